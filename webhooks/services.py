"""What other apps and the admin call: :func:`send_event` and :func:`redeliver`.

An event nobody subscribes to costs one query and nothing else (no row, no Redis call). Otherwise the event is
stored as an ``Event`` row and one job per subscribed endpoint is added in the same transaction, so the jobs are
written to Redis when it commits (spooled to the database if Redis is down then, see ``queues.spool``): a
worker never sees a job before its event row, and a rollback leaves neither.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from queues import Job, get_queue

from .exceptions import InvalidEvent, NotRedeliverable
from .jobs import QUEUE, deliver
from .models import Endpoint, Event, validate_event_name


def send_event(event: str, data: Mapping[str, Any]) -> int:
    """Send ``event`` (e.g. ``"notification.sent"``) with ``data`` to every active endpoint subscribed to it.

    Returns how many deliveries were enqueued (0 when nobody subscribes). Each (event, endpoint) has its own job id,
    ``webhook-<event id>-<endpoint id>``: adding it again is a no-op.

    Raises:
        InvalidEvent: a bad event name, or ``data`` that is not a dict JSON can carry (dates, decimals and UUIDs
            become strings, as DjangoJSONEncoder writes them).
    """
    try:
        validate_event_name(event)
    except ValidationError as e:
        raise InvalidEvent(e.messages[0]) from None
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"An event's data is a dict, not {type(data).__name__}.")
    subscribed = [pk for pk, events in Endpoint.objects.filter(is_active=True).values_list("pk", "events")
                  if event in events]  # in Python: SQLite's JSONField has no "contains"
    if not subscribed:
        return 0
    with transaction.atomic():
        try:
            row = Event.objects.create(name=event, data=dict(data))
        except TypeError as e:
            raise InvalidEvent(f"The data of event {event!r} cannot be stored as JSON: {e}. Pass ids, strings and "
                               "numbers.") from e
        get_queue(QUEUE).add_bulk([
            {"job": deliver, "data": {"event_id": str(row.pk), "endpoint_id": pk},
             "options": {"job_id": job_id(row.pk, pk)}}
            for pk in subscribed
        ])
    return len(subscribed)


def redeliver(event_id: uuid.UUID | str, endpoint_id: int) -> Job:
    """Send event ``event_id`` to endpoint ``endpoint_id`` again, under a new job id (an operator's decision): the
    body and its ``id`` are those of the first delivery; the attempts start again from 1.

    Raises:
        NotRedeliverable: the event row was deleted, or the endpoint was deleted or made inactive.
    """
    if not Event.objects.filter(pk=event_id).exists():
        raise NotRedeliverable(f"Event {event_id} was deleted: it cannot be sent again.")
    endpoint = Endpoint.objects.filter(pk=endpoint_id).only("is_active").first()
    if endpoint is None or not endpoint.is_active:
        state = "was deleted" if endpoint is None else "is inactive"
        raise NotRedeliverable(f"Endpoint {endpoint_id} {state}: event {event_id} is not sent to it again.")
    with transaction.atomic():  # written at commit; spooled if Redis is down then
        return get_queue(QUEUE).add(deliver, {"event_id": str(event_id), "endpoint_id": endpoint_id},
                                    job_id=f"{job_id(event_id, endpoint_id)}-{secrets.token_hex(4)}")


def job_id(event_id: uuid.UUID | str, endpoint_id: int) -> str:
    """The job id of the first delivery of an event to an endpoint."""
    return f"webhook-{uuid.UUID(str(event_id)).hex}-{endpoint_id}"
