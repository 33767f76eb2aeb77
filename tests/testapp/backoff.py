"""A custom backoff strategy, named by its dotted path in a job's ``backoff`` option (imported by the test app's
jobs.py, so every process registers it), and a function that is not one."""

import json

from queues import backoff_strategy
from queues.connection import get_connection


@backoff_strategy
def linear_recorded(attempts_made: int, delay: float, error: BaseException | None) -> float:
    """Wait ``delay * attempts_made``; record the arguments in the Redis list "backoff-calls"."""
    get_connection().rpush("backoff-calls", json.dumps([attempts_made, delay, type(error).__name__, str(error)]))
    return delay * attempts_made


def not_a_strategy(attempts_made: int, delay: float, error: BaseException | None) -> float:
    """Not decorated: a worker must never call it, whatever a job hash in Redis names."""
    get_connection().rpush("not-a-strategy-calls", "called")
    return 0.0
