"""The worker class that django-rq's ``rqworker`` and ``rqworker-pool`` run (``RQ["WORKER_CLASS"]``).

Whatever it is handed, it works with this app's queue and job classes, the JSON serializer and this
app's Redis client (which waits for Redis to come back instead of failing). It always runs RQ's
scheduler, which moves retries waiting out their backoff back to their queue. SIGTERM or SIGINT lets
the running job finish, then the worker exits (RQ's warm shutdown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rq
from rq.serializers import JSONSerializer

from .connection import WORKER, get_connection
from .job import RQJob
from .queue import RQQueue, get_definition


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
        # Retries wait out their backoff in the scheduled registry; without a scheduler they would wait
        # for ever. RQ's scheduler takes a lock per queue, so one of many workers does the moving.
        kwargs["with_scheduler"] = True
        return super().work(*args, **kwargs)  # type: ignore[misc]


class Worker(WorkerMixin, rq.Worker):
    """RQ's forking worker (a fresh process per job), JSON only, on this app's queues."""


class SimpleWorker(WorkerMixin, rq.SimpleWorker):
    """The same, running jobs in the worker process itself (no fork): for tests and I/O-bound jobs."""
