"""Jobs of the notifications app. Each takes ids, never rows: it reads what it needs again.

``deliver`` (queue "email") and ``deliver_in_app`` (queue "notifications") take ``notification_id`` only.
A delivery is at most once:

- the run claims the row (``queued``/``pending`` → ``sending``) in one conditional UPDATE; a run that cannot
  claim it (sent, canceled, claimed by another run) ends without sending;
- only the job named by the row's ``job_id`` may deliver it: a job left behind by a reschedule or a resend
  ends as superseded;
- a failed send puts the row back to ``queued`` with ``last_error`` while the queue has attempts left, and to
  ``failed`` on the last one (``current_job().retries_left``), then re-raises so the queue retries with its
  backoff (email: 3 attempts, exponential from 1 s);
- a row found ``sending`` means a run died mid-send (killed worker): whether the mail went out is unknown, so
  it is failed rather than sent twice; the admin's "resend" sends it again on purpose.

Ends that no retry can change (row deleted or canceled, recipient deleted, superseded) complete the job with
a ``{"skipped": reason}`` result instead of failing it: RQ's failed list stays what an operator must act on.
A missing template or address fails the row and raises ``queues.UnrecoverableError`` (fails at once, listed).
Return values hold no personal data (they are kept in Redis).

Progress (BullMQ's ``job.updateProgress``): 50 once the row is claimed, 100 once it is sent.

A row that ends sent or failed sends the webhook event ``notification.sent`` / ``notification.failed`` (ids, kind,
channel, status, and the error) to the endpoints that subscribe to it (``webhooks.send_event``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F
from django.template import TemplateDoesNotExist
from django.utils import timezone

from queues import Job, UnrecoverableError, current_job, job
from queues.conf import get_config
from queues.connection import get_connection
from queues.maintenance import apply_retention
from webhooks import send_event

from . import in_app
from .emails import build_message
from .models import NOT_STARTED, Channel, Notification, Status

logger = logging.getLogger(__name__)

EMAIL_QUEUE = "email"
IN_APP_QUEUE = "notifications"
CLEANUP_QUEUE = "cleanup"
DEFAULT_KEEP_DAYS = 90
DELETE_BATCH = 1000
MAX_ERROR_LENGTH = 2000


@job(EMAIL_QUEUE, name="notifications.ping")
def ping(message: str = "pong") -> dict[str, str]:
    """A job that only logs and returns its message: add it to see a worker run a job end to end."""
    running = current_job()
    logger.info("ping job %s (attempt %s): %s", running.id if running else "-",
                (running.attempts_made + 1) if running else "-", message)
    return {"message": message}


@job(CLEANUP_QUEUE, name="notifications.cleanup")
def cleanup() -> dict[str, Any]:
    """The seed's scheduled maintenance, run daily by the ``cleanup`` job scheduler (``QUEUES_JOB_SCHEDULERS``).

    Applies every queue's retention (``remove_on_complete`` / ``remove_on_fail``) to its old jobs, then deletes
    the notifications that ended (sent, failed, canceled) more than ``NOTIFICATIONS_KEEP_DAYS`` days ago
    (default 90; None keeps them all), a thousand rows per statement. Returns what it removed.
    """
    running = current_job()
    queues = get_config().queues
    jobs = {}
    for index, name in enumerate(queues, 1):
        jobs[name] = apply_retention(get_connection(), name)
        if running is not None:
            running.update_progress(round(50 * index / len(queues)))
    keep_days = getattr(settings, "NOTIFICATIONS_KEEP_DAYS", DEFAULT_KEEP_DAYS)
    deleted = 0
    if keep_days is not None:
        cutoff = timezone.now() - timedelta(days=keep_days)
        ended = Notification.objects.filter(status__in=[Status.SENT, Status.FAILED, Status.CANCELED],
                                            updated_at__lt=cutoff)
        while batch := list(ended.values_list("pk", flat=True)[:DELETE_BATCH]):
            deleted += Notification.objects.filter(pk__in=batch).delete()[0]
    if running is not None:
        running.update_progress(100)
    logger.info("cleanup: %d old jobs and %d notifications removed",
                sum(sum(counts.values()) for counts in jobs.values()), deleted)
    return {"jobs": jobs, "notifications_deleted": deleted}


@job(CLEANUP_QUEUE, name="notifications.sweep")
def sweep() -> dict[str, Any]:
    """The outbox sweep, every minute by the ``notifications-sweep`` job scheduler: pending rows whose enqueue
    failed, and queued rows whose job Redis lost, enqueued under their own job ids (``notifications.outbox``)."""
    from .outbox import SWEEP_LIMIT
    from .outbox import sweep as sweep_outbox

    enqueued: list[int] = []
    while True:
        batch = sweep_outbox(lost=True)
        enqueued += batch
        if len(batch) < SWEEP_LIMIT:
            return {"enqueued": len(enqueued)}


@job(EMAIL_QUEUE, name="notifications.deliver")
def deliver(notification_id: int) -> dict[str, Any]:
    """Send notification ``notification_id`` by email, at most once (see the module docstring)."""
    return _deliver(notification_id, Channel.EMAIL)


@job(IN_APP_QUEUE, name="notifications.deliver_in_app")
def deliver_in_app(notification_id: int) -> dict[str, Any]:
    """Deliver an in-app notification: the row is the user's inbox entry, so delivering renders its title and
    body into it (``notifications.in_app``) and marks it sent; the inbox API lists sent rows only."""
    return _deliver(notification_id, Channel.IN_APP)


# Which job, on which queue, delivers each channel.
DELIVERY_JOBS = {Channel.EMAIL: (EMAIL_QUEUE, deliver), Channel.IN_APP: (IN_APP_QUEUE, deliver_in_app)}


def _skipped(notification_id: int, reason: str) -> dict[str, Any]:
    logger.info("Notification %s not delivered: %s", notification_id, reason)
    return {"notification_id": notification_id, "skipped": reason}


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]


def _deliver(notification_id: int, channel: str) -> dict[str, Any]:
    running = current_job()
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return _skipped(notification_id, "the notification was deleted")
    if running is not None and notification.job_id and running.id != notification.job_id:
        return _skipped(notification_id, f"superseded by job {notification.job_id}")
    if notification.channel != channel:
        raise UnrecoverableError(f"Notification {notification_id} is on channel {notification.channel!r}, "
                                 f"not {channel!r}.")
    if notification.status == Status.SENDING:
        error = ("A previous run stopped while sending (worker killed or timed out): the message may have gone "
                 "out, so it is not sent again. Resend it from the admin if it did not arrive.")
        _move(notification, Status.FAILED, last_error=error)
        raise UnrecoverableError(f"Notification {notification_id}: {error}")
    if notification.status not in NOT_STARTED:
        return _skipped(notification_id, f"it is {notification.status}")

    user = _recipient(notification)
    if user is None:
        if Notification.objects.move(notification_id, NOT_STARTED, Status.CANCELED,
                                     last_error="The recipient was deleted before delivery."):
            return _skipped(notification_id, "the recipient was deleted")
        return _skipped(notification_id, "its status changed meanwhile")

    # The claim: from here on, this run is the only one that can send the row.
    if not Notification.objects.move(notification_id, NOT_STARTED, Status.SENDING, attempts=F("attempts") + 1):
        return _skipped(notification_id, "another run claimed it or it was canceled")

    if running is not None:
        running.update_progress(50)  # claimed; sending
    if channel == Channel.EMAIL:
        _send_email(notification, user, running)
    elif channel == Channel.IN_APP:
        _store_in_app(notification, user)
    _move(notification, Status.SENT, sent_at=timezone.now(), last_error="")
    if running is not None:
        running.update_progress(100)
    logger.info("Notification %s sent (%s, job %s)", notification_id, channel, running.id if running else "-")
    return {"notification_id": notification_id, "status": Status.SENT.value}


def _move(notification: Notification, to: str, **fields: Any) -> bool:
    """Move a claimed (``sending``) row to ``to``; when it ends (sent or failed), tell the webhooks.

    The event goes out once per row and outcome, since only one run can move the row out of ``sending``. It is
    sent after the row's UPDATE (autocommit: committed), so a receiver that reads the API sees the new status. A
    worker killed between the two loses the event (the row is right); a failure to record it is logged and never
    fails a delivery that happened.
    """
    moved = Notification.objects.move(notification.pk, [Status.SENDING], to, **fields)
    if moved and to in (Status.SENT, Status.FAILED):
        data = {"notification_id": notification.pk, "kind": notification.kind, "channel": notification.channel,
                "recipient_id": notification.recipient_id, "status": to}
        if to == Status.FAILED:
            data["error"] = fields.get("last_error", "")
        try:
            send_event(f"notification.{to}", data)
        except Exception:
            logger.exception("Notification %s: the webhook event notification.%s could not be recorded",
                             notification.pk, to)
    return moved


def _recipient(notification: Notification) -> Any:
    if notification.recipient_id is None:
        return None
    user_model = get_user_model()
    fields = {"pk", user_model.get_email_field_name(), user_model.USERNAME_FIELD}
    fields |= {name for name in ("first_name", "last_name") if hasattr(user_model, name)}
    return user_model._default_manager.filter(pk=notification.recipient_id).only(*fields).first()


def _store_in_app(notification: Notification, user: Any) -> None:
    """Write the rendered title and body into a claimed in-app row.

    A template that is missing or does not render fails the row for good: a retry would render it the same way
    (and would find the row ``sending``).
    """
    pk = notification.pk
    try:
        message = in_app.render(notification, user)
    except Exception as e:
        _move(notification, Status.FAILED, last_error=_error_text(e))
        raise UnrecoverableError(f"Notification {pk} cannot be delivered: {_error_text(e)}") from e
    Notification.objects.filter(pk=pk, status=Status.SENDING).update(**message)


def _send_email(notification: Notification, user: Any, running: Job | None) -> None:
    """Send the email of a claimed row; on failure release the row (or fail it on the last attempt) and raise."""
    pk = notification.pk
    try:
        if not getattr(user, user.get_email_field_name(), ""):
            raise ValueError("The recipient has no email address.")
        message = build_message(notification, user)
    except (TemplateDoesNotExist, ValueError) as e:
        _move(notification, Status.FAILED, last_error=_error_text(e))
        raise UnrecoverableError(f"Notification {pk} cannot be sent: {_error_text(e)}") from e
    try:
        message.send()
    except Exception as e:
        last = running is None or not running.retries_left
        _move(notification, Status.FAILED if last else Status.QUEUED, last_error=_error_text(e))
        # The seed's "log error with context": job id, name, attempt, error.
        logger.warning("Notification %s: sending failed (job %s %s, attempt %s%s): %s", pk,
                       running.id if running else "-", running.name if running else "-",
                       running.attempts_made + 1 if running else 1, ", the last" if last else ", will retry",
                       _error_text(e))
        raise
