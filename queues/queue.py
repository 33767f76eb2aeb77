"""The queue facade: BullMQ's ``Queue`` API in Python, on an RQ queue that always speaks JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
import rq
from django.db import transaction
from rq.exceptions import NoSuchJobError
from rq.serializers import JSONSerializer

from .conf import get_config, get_definition
from .connection import get_connection
from .exceptions import InvalidJobOptions
from .job import Job, RQJob
from .payload import check_payload
from .registry import get_job_definition


class RQQueue(rq.Queue):
    """RQ's queue with this app's job class and the JSON serializer, whatever it is handed.

    django-rq's commands and admin build queues through ``RQ_QUEUES[...]["QUEUE_CLASS"]``; a pickle
    serializer passed in (django-rq's ``rqworker`` passes one by default) is replaced, never used.
    """

    job_class = RQJob

    def __init__(self, name: str = "default", *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer
        job_class = kwargs.get("job_class")
        if not (isinstance(job_class, type) and issubclass(job_class, RQJob)):
            kwargs["job_class"] = RQJob
        if kwargs.get("connection") is None:
            kwargs["connection"] = get_connection()
        super().__init__(name, *args, **kwargs)


class Queue:
    """A queue from ``QUEUES``: add jobs to it, look them up.

    Get one with :func:`get_queue`; it is cheap to build, so build it where you use it.
    """

    def __init__(self, name: str, *, connection: redis.Redis | None = None) -> None:
        self.definition = get_definition(name)
        self.name = name
        self.connection = connection if connection is not None else get_connection()
        timeout = self.definition.default_job_options.timeout
        self.rq = RQQueue(name, connection=self.connection, default_timeout=None if timeout is None else int(timeout))

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"

    def add(self, job: str | Callable[..., Any], data: dict[str, Any] | None = None, **options: Any) -> Job:
        """Add a job and return its handle (``.id``, ``.name``, ``.data``, ``.get_state()``).

        ``job`` is a registered job name or the ``@job`` function itself; ``data`` reaches the function
        as keyword arguments. ``options`` override the job's and the queue's defaults. Inside
        ``transaction.atomic()`` the handle (and its id) is returned at once and the job is written to
        Redis when the transaction commits; a rollback writes nothing.

        Raises:
            UnknownJob: ``job`` is not registered.
            InvalidJobOptions: an option is unknown or out of range, or the job belongs to another queue.
            InvalidJobData: ``data`` is not small JSON (nothing is written).
        """
        definition = get_job_definition(job)
        if definition.queue != self.name:
            raise InvalidJobOptions(
                f"Job {definition.name!r} belongs to queue {definition.queue!r} (its @job decorator), not "
                f"{self.name!r}: add it with get_queue({definition.queue!r})."
            )
        resolved = definition.resolve_options(self.definition.default_job_options)
        if options:
            resolved = resolved.parse(options, f"add({definition.name!r})", resolved)
        data = {} if data is None else data
        check_payload(data, get_config().max_payload_bytes)
        rq_job = self.rq.create_job(definition.path, kwargs=data, description=definition.name, **resolved.rq_kwargs())
        db = transaction.get_connection()
        if db.in_atomic_block:
            transaction.on_commit(lambda: self.rq.enqueue_job(rq_job))
        else:
            self.rq.enqueue_job(rq_job)
        return Job(rq_job)

    def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or None when there is none (never added, or removed)."""
        try:
            return Job(RQJob.fetch(job_id, connection=self.connection, serializer=JSONSerializer))
        except NoSuchJobError:
            return None


def get_queue(name: str) -> Queue:
    """The queue ``name`` from ``QUEUES``.

    Raises:
        InvalidQueue: ``QUEUES`` does not define ``name`` (or has errors; see ``manage.py check``).
    """
    return Queue(name)
