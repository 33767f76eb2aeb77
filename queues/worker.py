"""The worker class that django-rq's ``rqworker`` and ``rqworker-pool`` run (``RQ["WORKER_CLASS"]``).

Whatever it is handed, it works with this app's queue and job classes, the JSON serializer and this
app's Redis client (which waits for Redis to come back instead of failing). It takes jobs with
``RQQueue.dequeue_any``: no-priority jobs first, then by priority, promoting delayed jobs and retries
whose time has come in the same atomic step, so it needs no separate scheduler process (RQ's
``--with-scheduler`` is accepted and has nothing left to do). A job that raises
``queues.UnrecoverableError``, or an error its queue lists in ``permanent_errors``, fails at once.
SIGTERM or SIGINT lets the running job finish, then the worker exits (RQ's warm shutdown).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import rq
from django.utils.module_loading import import_string
from rq.serializers import JSONSerializer

from .conf import get_config
from .connection import WORKER, get_connection
from .exceptions import UnrecoverableError
from .job import RQJob
from .queue import RQQueue, get_definition


@cache
def _permanent_errors(queue: str, paths: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    return tuple(import_string(path) for path in paths)


def permanent_errors(queue: str) -> tuple[type[BaseException], ...]:
    """The exception classes that fail a job of ``queue`` at once (``QUEUES[queue]["permanent_errors"]``)."""
    definition = get_config().queues.get(queue)
    return _permanent_errors(queue, definition.permanent_errors) if definition else ()


def _queue_names(queues: Any) -> list[str]:
    items = [queues] if isinstance(queues, str | rq.Queue) else list(queues)
    return [item if isinstance(item, str) else item.name for item in items]


class WorkerMixin:
    """What every worker class of this app adds to RQ's: see the module docstring."""

    queue_class = RQQueue
    job_class = RQJob

    def __init__(self, queues: str | rq.Queue | Sequence[str | rq.Queue], *args: Any, **kwargs: Any) -> None:
        names = _queue_names(queues)
        for name in names:
            get_definition(name)  # InvalidQueue names the queue and the fix
        connection = get_connection(WORKER)
        kwargs.update(
            connection=connection,
            serializer=JSONSerializer,
            queue_class=RQQueue,
            job_class=RQJob,
        )
        queue_objects = [RQQueue(name, connection=connection) for name in names]
        super().__init__(queue_objects, *args, **kwargs)  # type: ignore[call-arg]

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # Delayed jobs and retries are promoted by dequeue_any itself, to the millisecond; RQ's scheduler
        # (whole seconds, polling once a second) would only race it.
        kwargs["with_scheduler"] = False
        return super().work(*args, **kwargs)  # type: ignore[misc]

    def _finalize_failure(self, job: RQJob, queue: rq.Queue, execution: Any, exc_info: Any) -> None:
        error = exc_info[1]
        job.last_error = error
        if isinstance(error, UnrecoverableError) or isinstance(error, permanent_errors(job.origin)):
            job.fail_now = True
        super()._finalize_failure(job, queue, execution, exc_info)  # type: ignore[misc]


class Worker(WorkerMixin, rq.Worker):
    """RQ's forking worker (a fresh process per job), JSON only, on this app's queues."""


class SimpleWorker(WorkerMixin, rq.SimpleWorker):
    """The same, running jobs in the worker process itself (no fork): for tests and I/O-bound jobs."""
