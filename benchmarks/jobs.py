"""The ``bench`` queue's job functions (``benchmarks.settings``): what ``benchmarks/run.py`` adds."""

import json
import time

from queues import current_job, job
from queues.connection import get_connection


@job("bench")
def noop(**data: object) -> None:
    """Do nothing: the benchmarks measure the queue, not the job."""


@job("bench")
def sleep(seconds: float, **data: object) -> None:
    """Sleep ``seconds``: an I/O-bound job (what threads mode is for)."""
    time.sleep(seconds)


@job("bench")
def stamp(key: str) -> None:
    """Push ``time.time()`` at the start of the run onto the Redis list ``key`` (add-to-start latency)."""
    started = time.time()
    get_connection().rpush(key, repr(started))


@job("bench")
def tick(key: str) -> None:
    """Push ``{"id": <this run's job id>, "started": time.time()}`` (JSON) onto the Redis list ``key`` as the run's
    first step: a job scheduler's run (``repeat-<scheduler id>-<tick ms>``) started this long after its tick."""
    started = time.time()
    running = current_job()
    get_connection().rpush(key, json.dumps({"id": running.id if running else "", "started": started}))
