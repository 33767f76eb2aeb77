"""Django signals for the job lifecycle, sent in the worker process; and this app's own receivers.

Connect to them to hook in without a listener process (``sender`` is the queue's name)::

    from django.dispatch import receiver
    from queues.signals import job_completed

    @receiver(job_completed, sender="email")
    def on_email_sent(sender, job, return_value, **kwargs): ...

Every signal passes ``job`` (a :class:`queues.Job`). Besides:

- ``job_active``: the job is about to run (``attempts_made`` runs failed before).
- ``job_progress``: ``progress``, the value the job reported.
- ``job_completed``: ``return_value``.
- ``job_failed``: ``error`` (the exception) and ``attempts_made``; no attempts are left (or the error was final).
- ``job_retrying``: ``error`` and ``attempts_made``; the job will run again after its backoff.
- ``job_stalled``: ``stalled_count``; sent by the worker that found the job abandoned.

A receiver that raises is logged and never fails the job (signals are sent with ``send_robust``).
Forking workers send them from the job's own process, so a receiver may touch the database.
"""

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import Signal, receiver

from . import conf, connection

job_active = Signal()
job_progress = Signal()
job_completed = Signal()
job_failed = Signal()
job_retrying = Signal()
job_stalled = Signal()

WATCHED = {"QUEUES", "QUEUES_REDIS", "QUEUES_MAX_PAYLOAD_BYTES", "QUEUES_SHUTDOWN_GRACE", "QUEUES_EVENTS_MAX_LENGTH",
           "QUEUES_METRICS_MINUTES", "QUEUES_DASHBOARD_REFRESH"}


@receiver(setting_changed)
def reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in WATCHED:
        conf.clear_cache()
    if setting == "QUEUES_REDIS":
        connection.reset_connections()
