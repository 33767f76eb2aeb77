"""Job functions for the plain-RQ side of the benchmarks.

A plain RQ worker imports jobs by dotted path, so these live in an importable module: run the worker
with the project root as its working directory (``benchmarks.plain_jobs.noop``).
"""

import json
import time
from typing import Any

TICK_STAMPS = "bench:ticks"  # the list tick() pushes onto (run.py's ``schedulers``; plain_cron.py)


def noop(*args: Any, **kwargs: Any) -> None:
    """Do nothing: the benchmarks measure the queue, not the job."""


def sleep(seconds: float, **kwargs: Any) -> None:
    """Sleep ``seconds``: an I/O-bound job."""
    time.sleep(seconds)


def stamp(key: str) -> None:
    """Push ``time.time()`` at the start of the run onto the Redis list ``key`` (add-to-start latency)."""
    started = time.time()
    from rq import get_current_job

    get_current_job().connection.rpush(key, repr(started))


def tick(key: str = TICK_STAMPS) -> None:
    """Push ``{"id": <this job's id>, "started": time.time()}`` (JSON) onto the Redis list ``key`` as the job's first
    step (RQ's cron runs, ``run.py``'s ``schedulers``)."""
    started = time.time()
    from rq import get_current_job

    running = get_current_job()
    running.connection.rpush(key, json.dumps({"id": running.id, "started": started}))
