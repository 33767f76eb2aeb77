"""RQ's queue class for this app: what django-rq's commands, pages and API build (``RQ_QUEUES[...]["QUEUE_CLASS"]``).

It is django-rq's ``DjangoRQ``, so django-rq's API keeps its documented behaviour on these queues: ``COMMIT_MODE``
(``RQ["COMMIT_MODE"]``, or ``commit_mode=`` / ``autocommit=`` of ``django_rq.get_queue``; default
``"on_db_commit"``) defers ``django_rq.enqueue``, ``queue.enqueue`` and ``@django_rq.job``'s ``.delay`` inside a
transaction to its commit, and the per-queue ``DEFAULT_RESULT_TTL`` applies. This module imports django-rq, which
reads the settings: import it once they are configured (``queues.queue`` does so lazily).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django_rq.queues import DjangoRQ
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from .connection import get_connection
from .job import RQJob
from .scripts import QueueKeys


class RQQueue(DjangoRQ):
    """RQ's queue (django-rq's ``DjangoRQ``) with this app's job class and the JSON serializer, whatever it is handed.

    django-rq's commands and admin build queues through ``RQ_QUEUES[...]["QUEUE_CLASS"]``; a pickle
    serializer passed in (django-rq's ``rqworker`` passes one by default) is replaced, never used.
    Jobs are taken by this app's worker through ``queues/lua/take.lua`` (see ``queues.lifecycle``), never by
    RQ's ``dequeue_any``.
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
        self.keys = QueueKeys.of(self.name)

    def push_job_id(self, job_id: str, pipeline: Any = None, at_front: bool = False) -> None:  # noqa: FBT001,FBT002
        """RQ's push, which also wakes an idle worker (RQ requeues retries and admin actions this way)."""
        connection = pipeline if pipeline is not None else self.connection.pipeline()
        (connection.lpush if at_front else connection.rpush)(self.key, job_id)
        connection.zadd(self.keys.marker, {"0": 0})
        if pipeline is None:
            connection.execute()

    def schedule_job(self, job: Any, datetime: datetime, pipeline: Any = None, unique: bool = False) -> Any:  # noqa: FBT001,FBT002,E501
        """Put ``job`` in the scheduled registry, due at ``datetime`` to the microsecond (RQ: whole seconds)."""
        pipe = pipeline if pipeline is not None else self.connection.pipeline()
        pipe.sadd(self.redis_queues_keys, self.key)
        self._persist_job(job, pipe, status=JobStatus.SCHEDULED)
        pipe.zadd(self.keys.scheduled, {job.id: datetime.timestamp()})
        pipe.zadd(self.keys.marker, {"0": 0})
        if pipeline is None:
            pipe.execute()
        return job
