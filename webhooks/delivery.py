"""One delivery attempt of an event to an endpoint: build and sign the body, POST it, record a ``Delivery`` row,
and tell the queue what to do next by what it raises.

=====================================  ============================================  =========================
outcome                                the ``Delivery`` row                          the job
=====================================  ============================================  =========================
2xx                                    status code                                   completes
5xx, timeout, connection error, DNS    status code (or none) and the error           retried (exponential)
429                                    429 and the wait ``Retry-After`` asked for    retried after that wait
3xx                                    status code, "redirects are not followed"     fails (no retry)
other 4xx                              status code and the answer's start            fails (no retry)
URL refused by the SSRF guard          no status, the reason; nothing is sent        fails (no retry)
=====================================  ============================================  =========================

Error texts hold the answer's first bytes and the exception, never the secret or the signature.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import urllib3

from queues import UnrecoverableError, current_job

from . import conf, signing, targets, transport
from .exceptions import DeliveryFailed, TargetRefused, TargetUnresolvable
from .models import Delivery, Endpoint, Event

logger = logging.getLogger(__name__)

USER_AGENT = "django-queues-webhooks/1.0"
MAX_ERROR_LENGTH = 2000


def deliver(event_id: str, endpoint_id: int) -> dict[str, Any]:
    """Send event ``event_id`` to endpoint ``endpoint_id`` once (see the module docstring for the outcomes).

    Raises:
        DeliveryFailed, TargetUnresolvable: a failure worth retrying.
        queues.UnrecoverableError: a failure no retry can change.
    """
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None or not endpoint.is_active:
        return _skipped(event_id, endpoint_id, "the endpoint was deleted" if endpoint is None else
                        "the endpoint is inactive")
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        return _skipped(event_id, endpoint_id, "the event was deleted")
    running = current_job()
    attempt = running.attempts_made + 1 if running is not None else 1
    row = Delivery(endpoint=endpoint, event=event.name, payload_id=event.pk, attempt=attempt,
                   job_id=running.id if running is not None else "")

    started = time.monotonic()
    try:
        target = targets.resolve(endpoint.url)
    except TargetRefused as e:
        _record(row, started, error=f"Refused, nothing was sent: {e}")
        raise UnrecoverableError(f"Endpoint {endpoint_id}: {e}") from e
    except TargetUnresolvable as e:
        _record(row, started, error=str(e))
        raise
    body = event_body(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": str(event.pk),
        "X-Webhook-Event": event.name,
        signing.HEADER: signing.sign(endpoint.secret, body),
    }
    try:
        response = transport.post(target, body, headers, conf.timeout())
    except urllib3.exceptions.HTTPError as e:
        error = f"{type(e).__name__}: {e}"
        _record(row, started, error=error)
        raise DeliveryFailed(f"Endpoint {endpoint_id}: {error}") from e

    status = response.status
    if 200 <= status < 300:
        _record(row, started, status=status)
        return {"event_id": str(event.pk), "endpoint_id": endpoint_id, "status_code": status, "attempt": attempt}
    answer = _answer(response)
    if status == 429:
        wait = parse_retry_after(response.headers.get("retry-after"))
        when = f"after {wait:g} s (Retry-After)" if wait is not None else "with the queue's backoff"
        error = f"{answer}; retrying {when}."
        _record(row, started, status=status, error=error)
        raise DeliveryFailed(f"Endpoint {endpoint_id}: {error}", retry_after=wait)
    if 500 <= status < 600:
        _record(row, started, status=status, error=answer)
        raise DeliveryFailed(f"Endpoint {endpoint_id}: {answer}")
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        error = (f"{answer} to {location!r}: redirects are not followed; set the endpoint's URL to the final "
                 "address.")
    else:
        error = f"{answer}: not retried (only 5xx, 429, timeouts and connection errors are)."
    _record(row, started, status=status, error=error)
    raise UnrecoverableError(f"Endpoint {endpoint_id}: {error}")


def event_body(event: Event) -> bytes:
    """The JSON body of every delivery of ``event``: ``{"id", "event", "created_at", "data"}``."""
    created_at = event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"id": str(event.pk), "event": event.name, "created_at": created_at, "data": event.data},
                      separators=(",", ":"), ensure_ascii=False).encode()


def parse_retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (seconds or an HTTP date), at most
    ``WEBHOOKS_MAX_RETRY_AFTER``; None when it is missing or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - datetime.now(UTC)).total_seconds())
    return min(seconds, conf.max_retry_after())


def _answer(response: transport.Response) -> str:
    """"The endpoint answered 503 Service Unavailable: <the body's first bytes>"."""
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    text = f"The endpoint answered {response.status} {phrase}".rstrip()
    snippet = response.body.decode("utf-8", "replace").strip()
    return f"{text}: {snippet[:500]}" if snippet else text


def _record(row: Delivery, started: float, *, status: int | None = None, error: str = "") -> None:
    row.duration_ms = round((time.monotonic() - started) * 1000)
    row.status_code = status
    row.error = error[:MAX_ERROR_LENGTH]
    row.save()
    log = logger.info if row.succeeded else logger.warning
    log("webhook %s %s to endpoint %s, attempt %s (job %s): %s in %d ms%s", row.event, row.payload_id,
        row.endpoint_id, row.attempt, row.job_id or "-", status if status is not None else "no answer",
        row.duration_ms, f": {row.error}" if row.error else "")


def _skipped(event_id: str, endpoint_id: int, reason: str) -> dict[str, Any]:
    logger.info("webhook %s not sent to endpoint %s: %s", event_id, endpoint_id, reason)
    return {"event_id": str(event_id), "endpoint_id": endpoint_id, "skipped": reason}
