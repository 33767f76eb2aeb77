"""What views, the admin and other apps call: the seed's ``sendWelcomeEmail`` and ``scheduleReminder``, and
what a CMS needs beside them.

Each call reads only the user fields it needs, writes the row inside ``transaction.atomic()`` and enqueues
``{"notification_id": id}`` when the transaction commits (``notifications.outbox``): the worker can never
see a job before its row, and a rollback leaves no job. If Redis is down at commit, the call still succeeds
and returns the row ``pending``; the outbox sweep enqueues it later. The returned rows' ``status`` says which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from . import emails, in_app, outbox
from .exceptions import InvalidNotification, NotChangeable, NotFound, Undeliverable
from .models import KIND_RE, NOT_STARTED, Channel, Kind, Notification, Status


class ScheduledReminder(TypedDict):
    """What :func:`schedule_reminder` returns: the seed's ``{scheduled, date}`` and the row itself."""

    scheduled: bool
    date: str
    notification: Notification


def send_welcome_email(user_id: Any) -> Notification:
    """Send user ``user_id`` the welcome email, once: a second call returns the first notification.

    Raises:
        NotFound: no such user.
        Undeliverable: the user has no email address.
    """
    recipient = _recipient(user_id, Channel.EMAIL)
    with transaction.atomic():
        notification, created = Notification.objects.get_or_create(
            recipient_id=recipient, kind=Kind.WELCOME, defaults={"channel": Channel.EMAIL},
        )
        if created:
            _set_first_job_id(notification)
            outbox.enqueue_on_commit([notification])
    return notification


def schedule_reminder(user_id: Any, when: datetime, *, message: str = "",
                      channel: str = Channel.EMAIL) -> ScheduledReminder:
    """Remind user ``user_id`` at ``when`` (an aware datetime; a time in the past sends now).

    Raises:
        InvalidNotification: ``when`` is not an aware datetime (a ``ValueError``).
        NotFound: no such user.
        Undeliverable: an email reminder for a user without an email address.
    """
    _check_when(when)
    recipient = _recipient(user_id, channel)
    with transaction.atomic():
        notification = Notification.objects.create(
            recipient_id=recipient, kind=Kind.REMINDER, channel=channel, scheduled_for=when,
            context={"message": message} if message else {},
        )
        _set_first_job_id(notification)
        outbox.enqueue_on_commit([notification])
    return {"scheduled": True, "date": when.isoformat(), "notification": notification}


def reschedule(notification_id: int, when: datetime) -> Notification:
    """Move a notification that has not started to ``when``, under a new job id.

    The row keeps its id (clients hold it); its ``job_id`` becomes ``notification-<id>-<n>`` and a new job is
    added for ``when``. The old job, if it still runs, is not the row's job any more and ends as superseded
    (``queues`` has no way yet to remove a delayed job).

    Raises:
        InvalidNotification: ``when`` is not an aware datetime.
        NotFound: no such notification.
        NotChangeable: a worker has claimed it already, or it is sent, failed or canceled.
    """
    _check_when(when)
    with transaction.atomic():
        notification = _locked(notification_id)
        if notification.status not in NOT_STARTED:
            raise NotChangeable(f"Notification {notification_id} is {notification.status}: only a pending or "
                                "queued notification can be rescheduled.")
        job_id = notification.next_job_id()
        if not Notification.objects.move(notification.pk, NOT_STARTED, Status.PENDING, job_id=job_id,
                                         scheduled_for=when):
            raise NotChangeable(f"Notification {notification_id} was claimed by a worker meanwhile.")
        notification.refresh_from_db()
        outbox.enqueue_on_commit([notification])
    return notification


def cancel(notification_id: int) -> Notification:
    """Cancel a notification that has not started; canceling a canceled one changes nothing.

    Its job, when it runs, finds the row canceled and ends without sending or retrying.

    Raises:
        NotFound: no such notification.
        NotChangeable: it is being sent, or was sent or failed.
    """
    if not Notification.objects.move(notification_id, NOT_STARTED, Status.CANCELED):
        notification = Notification.objects.filter(pk=notification_id).first()
        if notification is None:
            raise NotFound(f"Notification {notification_id} does not exist.")
        if notification.status != Status.CANCELED:
            raise NotChangeable(f"Notification {notification_id} is {notification.status}: only a pending or "
                                "queued notification can be canceled.")
    return Notification.objects.get(pk=notification_id)


def resend(notification_id: int) -> Notification:
    """Send a failed or canceled notification again, under a new job id (an operator's decision).

    Raises:
        NotFound: no such notification.
        NotChangeable: it is not failed or canceled.
    """
    with transaction.atomic():
        notification = _locked(notification_id)
        final = (Status.FAILED, Status.CANCELED)
        if not Notification.objects.move(notification.pk, final, Status.PENDING, job_id=notification.next_job_id()):
            raise NotChangeable(f"Notification {notification_id} is {notification.status}: only a failed or "
                                "canceled notification can be resent.")
        notification.refresh_from_db()
        outbox.enqueue_on_commit([notification])
    return notification


def notify_many(user_ids: Iterable[Any], kind: str, *, channel: str = Channel.EMAIL,
                when: datetime | None = None, context: Mapping[str, Any] | None = None) -> list[Notification]:
    """Notify many users at once: one query for the users, one INSERT, one bulk add per queue.

    Users that do not exist (or, for email, have no address) are left out; the created rows are returned.
    A welcome goes through :func:`send_welcome_email` (one per user), not here. In-app rows land in each
    user's inbox once delivered (``notifications.inbox``); the ``message`` kind takes its ``title`` and
    ``body`` from ``context``.

    Raises:
        InvalidNotification: an unknown channel, a kind without templates for the channel, ``welcome``, or a
            naive ``when``.
    """
    _check_channel(channel)
    _check_kind(kind, channel)
    if kind == Kind.WELCOME:
        raise InvalidNotification("A welcome is sent once per user: call send_welcome_email(user_id) for each.")
    if when is not None:
        _check_when(when)
    user_model = get_user_model()
    pks = {_user_pk(user_id) for user_id in user_ids}
    users = user_model._default_manager.filter(pk__in=pks)
    if channel == Channel.EMAIL:
        users = users.exclude(**{user_model.get_email_field_name(): ""})
    recipients = sorted(users.values_list("pk", flat=True))
    with transaction.atomic():
        rows = Notification.objects.bulk_create([
            Notification(recipient_id=pk, kind=kind, channel=channel, scheduled_for=when,
                         context=dict(context or {}))
            for pk in recipients
        ])
        for row in rows:
            row.job_id = row.first_job_id()
        Notification.objects.bulk_update(rows, ["job_id"])
        outbox.enqueue_on_commit(rows)
    return rows


def _set_first_job_id(notification: Notification) -> None:
    notification.job_id = notification.first_job_id()
    Notification.objects.filter(pk=notification.pk).update(job_id=notification.job_id)


def _locked(notification_id: int) -> Notification:
    try:
        return Notification.objects.select_for_update().get(pk=notification_id)
    except Notification.DoesNotExist:
        raise NotFound(f"Notification {notification_id} does not exist.") from None


def _check_when(when: Any) -> None:
    if not isinstance(when, datetime):
        raise InvalidNotification(f"when must be a datetime, not {type(when).__name__}.")
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidNotification("when must be an aware datetime (with a time zone): e.g. "
                                  "django.utils.timezone.now() + timedelta(hours=1), or an ISO 8601 time ending "
                                  "in Z or +hh:mm.")


def _check_channel(channel: Any) -> None:
    if channel not in Channel.values:
        raise InvalidNotification(f"Unknown channel {channel!r}: use one of {', '.join(Channel.values)}.")


def _check_kind(kind: Any, channel: str) -> None:
    if channel == Channel.IN_APP:
        has_templates, needed = in_app.has_templates, "in_app/<kind>.txt and <kind>_title.txt"
    else:
        has_templates, needed = emails.has_templates, "email/<kind>.txt and <kind>_subject.txt"
    if not isinstance(kind, str) or not KIND_RE.match(kind) or not has_templates(kind):
        raise InvalidNotification(f"Unknown kind {kind!r} for channel {channel!r}: add templates/notifications/"
                                  f"{needed} (lower-case letters, digits, '-' and '_').")


def _user_pk(user_id: Any) -> Any:
    try:
        return get_user_model()._meta.pk.to_python(user_id)
    except ValidationError:
        raise NotFound(f"User {user_id!r} does not exist.") from None


def _recipient(user_id: Any, channel: str) -> Any:
    """The user's primary key, after checking they exist (and have an address, for email): one small query."""
    _check_channel(channel)
    user_model = get_user_model()
    email_field = user_model.get_email_field_name()
    row = user_model._default_manager.filter(pk=_user_pk(user_id)).values("pk", email_field).first()
    if row is None:
        raise NotFound(f"User {user_id!r} does not exist.")
    if channel == Channel.EMAIL and not row[email_field]:
        raise Undeliverable(f"User {user_id!r} has no email address.")
    return row["pk"]
