"""The transactional outbox: the row is the truth, Redis only a way to get the row delivered.

A notification row is committed ``pending`` before its job is written to Redis. When the job is written,
the row moves to ``queued``. When Redis is down at that moment, nothing fails for the user: the row stays
``pending`` and :func:`sweep` writes its job later. Nothing can be enqueued twice: a row's job id
(``notification-<id>``) is fixed with the row, and ``queues`` returns the existing job when a job id is
added again; a job whose id is not the row's ``job_id`` any more ends as superseded.

Who sweeps:

- the ``notifications.sweep`` job, every minute (the ``notifications-sweep`` job scheduler in settings), which
  also enqueues again the queued rows whose job Redis lost (``lost=True``);
- ``manage.py notifications_sweep`` (once, or ``--every SECONDS``; ``--lost`` as the job);
- every service call whose own enqueue succeeded sweeps a bounded batch afterwards (one indexed query when
  there is nothing to do), so the first request after Redis comes back flushes what piled up.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import redis
from django.db import transaction
from django.utils import timezone

from queues import get_queue
from queues.connection import get_connection
from queues.scripts import JOB_PREFIX

from .jobs import DELIVERY_JOBS
from .models import Channel, Notification, Status

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 100  # rows per sweep; a backlog takes several
SWEEP_GRACE = timedelta(seconds=5)  # leave a row this long to the request that created it
LOST_GRACE = timedelta(minutes=1)  # a queued row this old whose job Redis lacks was lost by Redis
LOST_PAGE = 500  # queued rows whose job one round trip looks for
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


def enqueue(notifications: Sequence[Notification]) -> int:
    """Write the delivery jobs of ``notifications`` to Redis, one ``add_bulk`` per queue; mark them queued.

    Each job carries only ``{"notification_id": id}`` under the row's own ``job_id``; a reminder's job is
    due at its ``scheduled_for`` (a time in the past runs now). Rows a worker claimed meanwhile, or that were
    canceled, keep their status. Returns how many jobs were handed to Redis.

    Raises:
        redis.ConnectionError, redis.TimeoutError: Redis is unreachable; nothing was marked queued.
    """
    by_channel: dict[str, list[Notification]] = defaultdict(list)
    for notification in notifications:
        by_channel[notification.channel].append(notification)
    for channel, rows in by_channel.items():
        queue, job = DELIVERY_JOBS[Channel(channel)]
        get_queue(queue).add_bulk([
            {"job": job, "data": {"notification_id": row.pk}, "options": _options(row)} for row in rows
        ])
    ids = [n.pk for n in notifications]
    Notification.objects.filter(pk__in=ids, status=Status.PENDING).update(status=Status.QUEUED,
                                                                          updated_at=timezone.now())
    for notification in notifications:
        if notification.status == Status.PENDING:
            notification.status = Status.QUEUED
    return len(ids)


def _options(notification: Notification) -> dict[str, Any]:
    options: dict[str, Any] = {"job_id": notification.job_id}
    if notification.scheduled_for is not None:
        options["run_at"] = notification.scheduled_for
    return options


def enqueue_on_commit(notifications: Sequence[Notification]) -> None:
    """Enqueue ``notifications`` once the current transaction commits (at once outside one).

    If Redis is down then, log it and leave the rows ``pending`` for the sweep: the caller's request
    succeeds. If the enqueue succeeded, sweep one bounded batch of older pending rows as well.
    """
    rows = list(notifications)

    def write() -> None:
        try:
            enqueue(rows)
        except REDIS_DOWN as e:
            logger.warning("Redis is unreachable (%s): notification(s) %s stay pending; the outbox sweep will "
                           "enqueue them.", type(e).__name__, ", ".join(str(n.pk) for n in rows))
            return
        try:
            sweep()
        except REDIS_DOWN:  # gone again since: the next sweep will do
            logger.warning("Redis became unreachable during the outbox sweep; pending rows wait for the next one.")

    transaction.on_commit(write)


def sweep(*, limit: int | None = None, grace: timedelta | None = None, dry_run: bool = False, lost: bool = False,
          lost_grace: timedelta | None = None) -> list[int]:
    """Enqueue up to ``limit`` pending rows untouched for ``grace``, oldest first; return their ids.

    ``limit`` and ``grace`` default to ``SWEEP_LIMIT`` and ``SWEEP_GRACE``. With ``lost``, also the ``queued``
    rows untouched for ``lost_grace`` (default ``LOST_GRACE``) whose job is no longer in Redis (Redis lost it: a
    crash with ``appendfsync everysec``, a restart without persistence, an operator's drain): their job never ran
    (a run moves the row out of ``queued`` before it sends), so it is added again under the same id. That check
    reads every such row (in pages of ``LOST_PAGE``), so it belongs to the periodic sweep, not to a request.

    Safe to run anywhere, any number of times, concurrently: each row is enqueued under its own job id,
    which Redis accepts once.

    Raises:
        redis.ConnectionError, redis.TimeoutError: Redis is unreachable; the rows stay as they are.
    """
    cutoff = timezone.now() - (SWEEP_GRACE if grace is None else grace)
    limit = SWEEP_LIMIT if limit is None else limit
    rows = list(
        Notification.objects.outbox()
        .filter(updated_at__lte=cutoff)
        .order_by("updated_at", "pk")
        .only("pk", "channel", "status", "job_id", "scheduled_for")[:limit]
    )
    if lost and len(rows) < limit:
        rows += _lost(limit - len(rows), timezone.now() - (LOST_GRACE if lost_grace is None else lost_grace))
    if rows and not dry_run:
        enqueue(rows)
        logger.info("Outbox sweep enqueued %d notification(s): %s", len(rows), ", ".join(str(n.pk) for n in rows))
    return [n.pk for n in rows]


def _lost(limit: int, cutoff: datetime) -> list[Notification]:
    """Up to ``limit`` queued rows untouched since ``cutoff`` whose job Redis no longer has (logged each)."""
    found: list[Notification] = []
    queued = (Notification.objects.filter(status=Status.QUEUED, updated_at__lte=cutoff).exclude(job_id="")
              .order_by("pk").only("pk", "channel", "status", "job_id", "scheduled_for"))
    connection = get_connection()
    after = 0
    while len(found) < limit:
        page = list(queued.filter(pk__gt=after)[:LOST_PAGE])
        if not page:
            break
        after = page[-1].pk
        pipe = connection.pipeline(transaction=False)
        for row in page:
            pipe.exists(JOB_PREFIX + row.job_id)
        for row, exists in zip(page, pipe.execute(), strict=True):
            if not exists and len(found) < limit:
                logger.warning("notification %d is queued but its job %s is no longer in Redis: enqueued again "
                               "under the same id", row.pk, row.job_id)
                found.append(row)
    return found
