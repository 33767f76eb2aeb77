"""Job functions for the plain-RQ side of the benchmarks.

A plain RQ worker imports jobs by dotted path, so these live in an importable module: run the worker
with the project root as its working directory (``benchmarks.plain_jobs.noop``).
"""

import time
from typing import Any


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
