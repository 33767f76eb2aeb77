"""Job functions for the plain-RQ side of the benchmarks.

A plain RQ worker imports jobs by dotted path, so these live in an importable module: run the worker
with the project root as its working directory (``benchmarks.plain_jobs.noop``).
"""

from typing import Any


def noop(*args: Any, **kwargs: Any) -> None:
    """Do nothing: the benchmarks measure the queue, not the job."""
