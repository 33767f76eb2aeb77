"""Job functions the tests add; each leaves a trace in Redis that the test can read."""

import os
import sys
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


@job("notifications")
def note(key: str, value: str) -> None:
    """Push ``value`` onto the Redis list ``key`` (a job of the "notifications" queue)."""
    get_connection().rpush(key, value)


@job("email")
def worker_class(key: str) -> str:
    """Record the dotted class name of the RQ worker that runs this job (found on the call stack)."""
    from rq.worker import BaseWorker

    frame = sys._getframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseWorker):
            name = f"{type(candidate).__module__}.{type(candidate).__qualname__}"
            get_connection().rpush(key, name)
            return name
        frame = frame.f_back
    get_connection().rpush(key, "no worker on the stack")
    return ""


@job("notifications")
def fail_then_record_times(key: str, failures: int) -> int:
    """Record ``time.time()`` at the start of every run; fail the first ``failures`` runs."""
    running = current_job()
    assert running is not None
    get_connection().rpush(key, repr(time.time()))
    if running.attempts_made < failures:
        raise RuntimeError(f"failing on purpose, attempt {running.attempts_made + 1}")
    return running.attempts_made + 1


def not_a_job(key: str) -> None:
    """Not decorated with @job: a worker must refuse a job that names it, however it got into Redis."""
    get_connection().rpush(key, "ran")


def not_a_callback(job, connection, *args) -> None:
    """An RQ callback that is no @job function: a worker must never import or call it."""
    get_connection().rpush("not-a-callback-called", job.id)
