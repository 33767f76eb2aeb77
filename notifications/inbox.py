"""A user's in-app inbox: their delivered in-app notifications, and marking them read.

The inbox holds the rows with ``channel="in_app"`` and ``status="sent"`` of one recipient, newest delivery
first (a reminder shows up when it is delivered, not when it was scheduled). Every function takes the user
and looks only at that user's rows, staff included: nobody reads or marks another's inbox, and an id that is
not in the caller's inbox (another user's, an email, one not delivered yet) is :class:`NotFound`, the same
answer as an id that does not exist.

Marking read is one conditional ``UPDATE ... WHERE read_at IS NULL``: a second call, or two at once, keep
the first time. It leaves ``updated_at`` alone, so the cleanup's retention still counts from the delivery.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from .exceptions import NotFound
from .models import Channel, Notification, Status

ORDER = ("-sent_at", "-pk")  # newest delivery first; the id breaks ties (bulk deliveries share a millisecond)


def inbox(user: Any, *, unread: bool = False) -> QuerySet[Notification]:
    """``user``'s delivered in-app notifications, newest first; only the unread ones with ``unread``."""
    rows = Notification.objects.filter(recipient_id=user.pk, channel=Channel.IN_APP, status=Status.SENT)
    if unread:
        rows = rows.filter(read_at__isnull=True)
    return rows.order_by(*ORDER)


def unread_count(user: Any) -> int:
    return inbox(user, unread=True).count()


def mark_read(user: Any, notification_id: int) -> Notification:
    """Mark one notification of ``user``'s inbox read (once: a second call keeps the first ``read_at``).

    Raises:
        NotFound: the id is not in ``user``'s inbox.
    """
    rows = inbox(user).filter(pk=notification_id)
    rows.filter(read_at__isnull=True).update(read_at=timezone.now())
    notification = rows.first()
    if notification is None:
        raise NotFound(f"Notification {notification_id} does not exist.")
    return notification


def mark_all_read(user: Any) -> int:
    """Mark every unread notification of ``user``'s inbox read; return how many were unread."""
    return inbox(user, unread=True).update(read_at=timezone.now())
