"""Job functions the tests add; each leaves a trace in Redis that the test can read."""

import os
import time

from queues import current_job, job
from queues.connection import get_connection


@job("email")
def add(a: int, b: int) -> int:
    return a + b


@job("email", name="tests.record")
def record(key: str, value: str) -> None:
    """Push ``value`` onto the Redis list ``key``, so a test can see the job ran."""
    get_connection().rpush(key, value)


@job("email")
def whoami(key: str) -> dict:
    running = current_job()
    assert running is not None
    info = {"id": running.id, "name": running.name, "data": running.data, "attempts_made": running.attempts_made,
            "pid": os.getpid(), "client_id": get_connection().client_id()}
    get_connection().rpush(key, repr(sorted(info.items())))
    return info


@job("email")
def slow(key: str, seconds: float) -> str:
    get_connection().rpush(key, "started")
    time.sleep(seconds)
    get_connection().rpush(key, "finished")
    return "done"


@job("notifications")
def fail_then_record(key: str, failures: int) -> int:
    """Fail the first ``failures`` runs, then record the attempt number."""
    running = current_job()
    assert running is not None
    if running.attempts_made < failures:
        raise RuntimeError(f"failing on purpose, attempt {running.attempts_made + 1}")
    get_connection().rpush(key, str(running.attempts_made + 1))
    return running.attempts_made + 1
