"""A custom backoff strategy, named by its dotted path in a job's ``backoff`` option."""

import json

from queues.connection import get_connection


def linear_recorded(attempts_made: int, delay: float, error: BaseException | None) -> float:
    """Wait ``delay * attempts_made``; record the arguments in the Redis list "backoff-calls"."""
    get_connection().rpush("backoff-calls", json.dumps([attempts_made, delay, type(error).__name__, str(error)]))
    return delay * attempts_made
