"""A reusable app written only against Django's task API (``django.tasks``, here its backport ``django_tasks``):
nothing in it knows about the queues it runs on. Each task leaves its trace in a file the test names."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from django_tasks import TaskContext, task


class TaskFailed(Exception):
    """Raised by :func:`fail`, so a test can check the error's class path."""


def _append(path: str, line: str) -> None:
    with Path(path).open("a") as out:
        out.write(line + "\n")


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def record(path: str, value: str) -> str:
    _append(path, value)
    return value


@task(priority=50)
def urgent(path: str, value: str) -> str:
    _append(path, value)
    return value


@task(takes_context=True)
def with_context(context: TaskContext, path: str) -> dict:
    """Fails on its first attempt; returns what the context said on each."""
    result = context.task_result
    _append(path, f"{result.id} {context.attempt} {result.status}")
    if context.attempt == 1:
        raise TaskFailed("first attempt")
    return {"id": result.id, "attempt": context.attempt, "args": result.args, "pid": os.getpid()}


@task()
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@task()
def fail(message: str) -> None:
    raise TaskFailed(message)


@task()
def not_json() -> object:
    return object()


@task(queue_name="email")
def on_email(a: int) -> int:
    return a * 2


def not_a_task(path: str) -> None:
    _append(path, "ran")


@task()
def exits() -> None:
    exit(1)  # noqa: PLR1722 - what a careless task does


@task()
def sleep_for(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@task(queue_name="stalls")
def slow_on_stalls(path: str, seconds: float) -> int:
    """Sleeps on the tests' "stalls" queue (stalled_interval 3 s); returns how many runs started."""
    import time

    _append(path, "started")
    time.sleep(seconds)
    return len(Path(path).read_text().splitlines())
