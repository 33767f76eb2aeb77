"""BullMQ-grade job queues for Django, on django-rq, RQ and Redis.

The public API::

    from queues import job, get_queue, current_job, QueueEvents

    @job("email")
    def send_welcome(notification_id: int) -> dict: ...

    get_queue("email").add(send_welcome, {"notification_id": 42})

Importing this package needs no configured settings, so the project's settings may import
``queues.conf``. Nothing here touches Redis until a queue is used.
"""

from .events import QueueEvents
from .exceptions import (
    InvalidJobData,
    InvalidJobOptions,
    InvalidQueue,
    InvalidScheduler,
    JobRefused,
    PayloadTooLarge,
    QueueBusy,
    QueuesError,
    UnknownJob,
    UnrecoverableError,
)
from .job import Job, current_job
from .options import backoff_strategy
from .queue import Queue, get_queue
from .registry import job

__all__ = [
    "InvalidJobData",
    "InvalidJobOptions",
    "InvalidQueue",
    "InvalidScheduler",
    "Job",
    "JobRefused",
    "PayloadTooLarge",
    "Queue",
    "QueueBusy",
    "QueueEvents",
    "QueuesError",
    "UnknownJob",
    "UnrecoverableError",
    "backoff_strategy",
    "current_job",
    "get_queue",
    "job",
]
