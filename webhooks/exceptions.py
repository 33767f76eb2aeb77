"""The exceptions of the webhooks app. Catch these; the base class is not raised directly."""

from __future__ import annotations


class WebhookError(Exception):
    """Base class of this app's errors. Do not raise directly."""


class InvalidEvent(WebhookError, ValueError):
    """``send_event`` got an event name or data it cannot send (a bad name, data that is not a JSON object)."""


class TargetRefused(WebhookError, ValueError):
    """A URL webhooks may not be sent to: not http(s), or (unless allowed) a host with an internal address."""


class TargetUnresolvable(WebhookError):
    """The DNS lookup of an endpoint's host failed; at delivery time the attempt is retried."""


class DeliveryFailed(WebhookError):
    """An attempt that may succeed later (5xx, 429, timeout, connection error): the queue retries it.

    ``retry_after`` (seconds) is the wait a 429's ``Retry-After`` asked for; the job's backoff strategy
    (``webhooks.jobs.retry_after_backoff``) waits that long instead of its exponential delay.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotRedeliverable(WebhookError):
    """A delivery that cannot be sent again: its event row was deleted, or its endpoint is gone or inactive."""
