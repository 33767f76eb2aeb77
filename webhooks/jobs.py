"""The webhooks job and its backoff: ``webhooks.deliver`` on the "webhooks" queue.

The job takes ids only (``event_id``, ``endpoint_id``) and reads the rows again (``webhooks.delivery``). The queue's
``default_job_options`` give it its attempts (5) and timeout; its backoff is :func:`retry_after_backoff`: a 429's
``Retry-After`` when the endpoint sent one, else exponential from ``delay`` (2 s: 2, 4, 8, 16 s). A ``backoff``
passed to ``add()`` with this type and another ``delay`` changes the base, not the strategy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from queues import backoff_strategy, current_job, job

from . import conf, delivery

QUEUE = "webhooks"
DELETE_BATCH = 1000


@backoff_strategy
def retry_after_backoff(attempts_made: int, delay: float, error: BaseException | None) -> float:
    """Seconds before retry ``attempts_made``: the error's ``retry_after`` (at most ``WEBHOOKS_MAX_RETRY_AFTER``)
    when it carries one, else ``delay * 2 ** (attempts_made - 1)``."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return min(float(retry_after), conf.max_retry_after())
    return delay * 2 ** (attempts_made - 1)


BACKOFF = {"type": f"{__name__}.retry_after_backoff", "delay": 2}


@job(QUEUE, name="webhooks.deliver", backoff=BACKOFF)
def deliver(event_id: str, endpoint_id: int) -> dict[str, Any]:
    """POST event ``event_id`` to endpoint ``endpoint_id``, signed; one ``Delivery`` row per attempt."""
    return delivery.deliver(event_id, endpoint_id)


@job("cleanup", name="webhooks.cleanup")
def cleanup() -> dict[str, int]:
    """Delete the events and ``Delivery`` rows older than ``WEBHOOKS_KEEP_DAYS`` (default 30), a thousand rows per
    statement; run daily by the ``webhooks-cleanup`` job scheduler. Returns how many of each were deleted."""
    from .models import Delivery, Event

    cutoff = timezone.now() - timedelta(days=conf.keep_days())
    deleted = {"deliveries": 0, "events": 0}
    for key, model in (("deliveries", Delivery), ("events", Event)):
        old = model.objects.filter(created_at__lt=cutoff)
        while batch := list(old.values_list("pk", flat=True)[:DELETE_BATCH]):
            deleted[key] += model.objects.filter(pk__in=batch).delete()[0]
        if (running := current_job()) is not None:
            running.update_progress(50 if key == "deliveries" else 100)
    return deleted
