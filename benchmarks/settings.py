"""Settings for ``benchmarks/run.py``: ``tests.settings`` plus a queue ``bench`` and this package's jobs.

The ``bench`` queue's worker mode and concurrency come from the environment, so that one settings module serves
every worker the run starts (``BENCH_MODE`` = processes | threads | fork, default processes; ``BENCH_CONCURRENCY``,
default 1). Its jobs have plain options: one attempt, no retention limit (a finished job and its hash stay, so the
run can read ``started_at`` / ``ended_at``). ``benchmarks`` is an installed app, so queues' autodiscovery imports
``benchmarks.jobs`` in every process.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, QUEUES

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks"]

QUEUES = {
    **QUEUES,
    "bench": {
        "mode": os.environ.get("BENCH_MODE", "processes"),
        "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "1")),
        # keep every finished job (the default keeps the newest 1,000): the run reads each job's hash
        "default_job_options": {"attempts": 1, "remove_on_complete": False, "remove_on_fail": False},
    },
}
