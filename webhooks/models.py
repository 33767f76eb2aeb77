"""Webhook endpoints, the events sent to them, and a row per delivery attempt.

An ``Event`` row holds what ``send_event`` was given (name and data) under a UUID: the queue's jobs carry only
that id and the endpoint's, and every attempt and redelivery of the event sends the same body with the same ``id``.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from .exceptions import TargetRefused

EVENT_NAME_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
EVENT_NAME_MAX = 100
MAX_EVENTS_PER_ENDPOINT = 100
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def validate_event_name(name: Any) -> None:
    """Refuse an event name that is not dotted lower-case words, e.g. ``notification.sent``."""
    if not isinstance(name, str) or len(name) > EVENT_NAME_MAX or not EVENT_NAME_RE.match(name):
        raise ValidationError(f"{name!r} is not an event name: use lower-case words (a-z, 0-9, _) joined by dots, "
                              f"e.g. \"notification.sent\", at most {EVENT_NAME_MAX} characters.")


def validate_events(value: Any) -> None:
    """An endpoint's ``events``: a non-empty JSON list of distinct event names."""
    if not isinstance(value, list) or not value:
        raise ValidationError('List the events to send as a JSON list of names, e.g. ["notification.sent"].')
    if len(value) > MAX_EVENTS_PER_ENDPOINT:
        raise ValidationError(f"At most {MAX_EVENTS_PER_ENDPOINT} events per endpoint.")
    for name in value:
        validate_event_name(name)
    if len(set(value)) != len(value):
        raise ValidationError("Each event is listed once.")


def validate_target(url: str) -> None:
    """The SSRF guard at save time (``webhooks.targets``): http(s) only, and no internal address unless allowed."""
    from .targets import validate_url

    try:
        validate_url(url)
    except TargetRefused as e:
        raise ValidationError(str(e)) from None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class Endpoint(models.Model):
    """A URL that receives the events it subscribes to, signed with its own secret."""

    url = models.URLField("URL", max_length=2000, validators=[validate_target],
                          help_text="An http(s) URL on the public internet.")
    # Shown once, right after the endpoint is created (the admin's add response); masked everywhere after.
    secret = models.CharField(max_length=100, blank=True, editable=False)
    events = models.JSONField(default=list, validators=[validate_events],
                              help_text='The events to send here, as a JSON list: ["notification.sent", '
                                        '"notification.failed"].')
    is_active = models.BooleanField("active", default=True, help_text="Inactive endpoints receive nothing.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url", "id"]

    def __str__(self) -> str:
        return self.url

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, generating the signing secret when it is empty."""
        if not self.secret:
            self.secret = new_secret()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "secret"}
        super().save(*args, **kwargs)

    @property
    def masked_secret(self) -> str:
        """The secret as the admin shows it after creation: ``whsec_…abcd``."""
        return f"{SECRET_PREFIX}…{self.secret[-4:]}" if self.secret else "-"


class Event(models.Model):
    """One ``send_event`` call that some endpoint subscribed to: the body every delivery of it sends."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=EVENT_NAME_MAX)
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.name} {self.id}"


class Delivery(models.Model):
    """One attempt to send an event to an endpoint: its HTTP status (None when no answer came), time and error."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=EVENT_NAME_MAX)
    payload_id = models.UUIDField(help_text="The event's id: the same for every attempt and redelivery of it.")
    attempt = models.PositiveIntegerField(help_text="The run of the queue job: 1 for the first, 2 for its retry...")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    job_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        permissions = [("redeliver_delivery", "Can redeliver webhook deliveries")]
        indexes = [models.Index(fields=["endpoint", "payload_id"])]

    def __str__(self) -> str:
        return f"{self.event} {self.payload_id} → {self.endpoint_id} (attempt {self.attempt})"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
