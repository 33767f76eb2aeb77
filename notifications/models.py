"""The record of every notification: the database holds the truth, the queue only carries the row's id.

Status moves one way::

    pending ──▶ queued ──▶ sending ──▶ sent
       │          │  ▲         │
       │          │  └─────────┤ (a failed attempt with attempts left: back to queued, last_error set)
       │          │            └──▶ failed   (the last attempt failed, or an error no retry can fix)
       └──────────┴──▶ canceled

- ``pending``: the row is committed, its job is not known to be in Redis (yet, or Redis was down: the
  outbox sweep enqueues it, see ``notifications.outbox``).
- ``queued``: Redis accepted the job named by ``job_id``.
- ``sending``: a worker claimed the row and is talking to the mail server. Only one run can claim a row.

Every change of status is one conditional ``UPDATE ... WHERE status IN (...)`` (:meth:`NotificationQuerySet.move`),
never a read-modify-``save()``: two runs of a job (a retry, a duplicate, a sweep racing a service) cannot both
claim a row, and a canceled row cannot be sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")  # names a template file: no dots, no slashes


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    IN_APP = "in_app", "In-app"


class Kind:
    """The kinds the services know by name. Any other kind works when its templates exist."""

    WELCOME = "welcome"
    REMINDER = "reminder"
    MESSAGE = "message"  # in-app: the title and body come from the context


NOT_STARTED = (Status.PENDING, Status.QUEUED)  # cancel and reschedule work only before a worker claims the row


class NotificationQuerySet(models.QuerySet["Notification"]):
    def move(self, pk: int, from_: Iterable[str], to: str, **fields: Any) -> bool:
        """Set row ``pk`` to status ``to`` (and ``fields``) only if its status is one of ``from_``.

        One ``UPDATE``: the database decides which of two racing callers wins. Returns whether this one did.
        """
        return bool(
            self.filter(pk=pk, status__in=list(from_)).update(status=to, updated_at=timezone.now(), **fields)
        )

    def outbox(self) -> NotificationQuerySet:
        """Rows whose job is not known to be in Redis (what the outbox sweep enqueues)."""
        return self.filter(status=Status.PENDING)


class Notification(models.Model):
    """One notification to one user on one channel, from creation to delivery.

    A delivered in-app row is also the message in its recipient's inbox: ``title``, ``body``, ``read_at``
    (``notifications.inbox``).
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # Keep the record when a user is deleted; the job finds no recipient and cancels the row.
        on_delete=models.SET_NULL,
        null=True,
        related_name="notifications",
    )
    kind = models.CharField(
        max_length=50,
        validators=[RegexValidator(KIND_RE, "A kind is lower-case letters, digits, '-' and '_'.")],
        help_text="Which templates render it: templates/notifications/<channel>/<kind>.txt (and _subject.txt, "
                  ".html for email; _title.txt in-app).",
    )
    channel = models.CharField(max_length=20, choices=Channel.choices, default=Channel.EMAIL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    context = models.JSONField(default=dict, blank=True, help_text="Extra template variables (small JSON).")
    attempts = models.PositiveIntegerField(default=0, help_text="Delivery attempts started by workers.")
    job_id = models.CharField(max_length=128, blank=True, help_text="The queue job that may deliver this row.")
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="Deliver no sooner than this.")
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # In-app rows: the message as the user reads it, rendered once by the delivering job (a later change of
    # template or of the user's name does not rewrite what they were sent), and when they read it.
    title = models.CharField(max_length=200, blank=True, help_text="In-app: the rendered one-line title.")
    body = models.TextField(blank=True, help_text="In-app: the rendered plain-text body.")
    read_at = models.DateTimeField(null=True, blank=True, help_text="In-app: when the recipient marked it read.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The admin's filters, each with its date order.
            models.Index(fields=["status", "-created_at"], name="notif_status_created_idx"),
            models.Index(fields=["kind", "-created_at"], name="notif_kind_created_idx"),
            models.Index(fields=["channel", "-created_at"], name="notif_channel_created_idx"),
            models.Index(fields=["-created_at"], name="notif_created_idx"),
            # The outbox sweep (and the check after each enqueue): small, since few rows stay pending.
            models.Index(fields=["updated_at"], condition=Q(status="pending"), name="notif_outbox_idx"),
            # A user's in-app inbox, newest delivery first (notifications.inbox), and its unread part alone.
            models.Index(fields=["recipient", "-sent_at"], condition=Q(channel="in_app", status="sent"),
                         name="notif_inbox_idx"),
            models.Index(fields=["recipient", "-sent_at"],
                         condition=Q(channel="in_app", status="sent", read_at__isnull=True),
                         name="notif_inbox_unread_idx"),
        ]
        constraints = [
            # At most one welcome per user: send_welcome_email() returns the first one.
            models.UniqueConstraint(fields=["recipient"], condition=Q(kind="welcome"), name="notif_one_welcome"),
        ]
        permissions = [("resend_notification", "Can resend a failed or canceled notification")]

    def __str__(self) -> str:
        return f"{self.kind} {self.channel} notification #{self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in (Status.SENT, Status.FAILED, Status.CANCELED)

    def first_job_id(self) -> str:
        """The job id of the row's first enqueue: known before the commit, stable across sweeps."""
        return f"notification-{self.pk}"

    def next_job_id(self) -> str:
        """A fresh job id for a reschedule or a resend: ``notification-<id>-<n>``, n = 2, 3, …

        The row names the one job allowed to deliver it; a job with any other id ends as superseded.
        """
        base = self.first_job_id()
        suffix = self.job_id.removeprefix(base).lstrip("-") if self.job_id.startswith(base) else ""
        return f"{base}-{int(suffix) + 1 if suffix.isdigit() else 2}"
