"""Jobs added inside ``transaction.atomic()`` that Redis could not take when the transaction committed.

``Queue.add()`` in a transaction writes the job when the transaction commits (``on_commit``). Should Redis be
unreachable then, the database has committed already: raising would fail a request whose work is done, and the job
would be lost. Instead the job, checked and built, is written to the ``SpooledJob`` table (one INSERT, only on that
failure) and an ERROR is logged with its id; every worker's keeper looks at the spool every
:data:`FLUSH_INTERVAL` seconds (and at start) and adds what it finds with the add script, under the same job id, so
a job that did reach Redis before its row was deleted is not added twice.

What this does not cover: a web process killed between the commit and its write to Redis. Work that must survive
that too keeps its own row in the transaction and re-adds it from a sweep, as the notifications app does
(``notifications.outbox``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgpack
import redis
from django.db import connections

from .conf import get_config

if TYPE_CHECKING:
    from .queue import NewJob

logger = logging.getLogger("queues.spool")

FLUSH_INTERVAL = 10.0  # seconds between a worker's looks at the spool
FLUSH_LIMIT = 500  # jobs one flush adds at most
_last_error: str | None = None


# Replies of a Redis that cannot take a write now but will later: full (maxmemory with noeviction: OOM), a replica
# (READONLY, after a failover), short of the replicas min-replicas-to-write asks for (NOREPLICAS), or a replica
# whose primary is down (MASTERDOWN); redis-py raises the first two as their own classes.
_REFUSALS = ("NOREPLICAS", "MASTERDOWN")


def refused_for_now(error: BaseException) -> bool:
    """Whether ``error`` says Redis is unreachable, or refuses writes for a while: what the spool is for."""
    if isinstance(error, redis.ConnectionError | redis.TimeoutError | redis.exceptions.OutOfMemoryError
                  | redis.exceptions.ReadOnlyError):
        return True
    return isinstance(error, redis.ResponseError) and any(word in str(error) for word in _REFUSALS)


def spool(queue: str, prepared: list[NewJob], error: BaseException) -> None:
    """Keep ``prepared`` jobs of ``queue`` in the database until Redis takes them; log it."""
    from .models import SpooledJob

    SpooledJob.objects.bulk_create([
        SpooledJob(queue=queue, job_id=new.id, name=new.name, mode=new.mode, score=new.score, error=str(error)[:500],
                   fields=msgpack.packb([x for pair in new.fields.items() for x in pair], use_bin_type=False))
        for new in prepared
    ], ignore_conflicts=True)
    logger.error("Redis could not take a write when the transaction committed (%s): %d job(s) of queue %s spooled to "
                 "the database (%s); a worker adds them once Redis is back", error, len(prepared), queue,
                 ", ".join(new.id for new in prepared))


def flush(connection: redis.Redis | None = None, queues: list[str] | None = None, limit: int = FLUSH_LIMIT) -> int:
    """Add spooled jobs (of ``queues``, default all) to Redis and delete their rows; return how many were added
    (a job whose id exists already is not added again, and its row goes too).

    Raises:
        redis.RedisError: Redis is still unreachable (the rows stay).
    """
    from .models import SpooledJob
    from .queue import NewJob, Queue

    rows = SpooledJob.objects.all()
    if queues is not None:
        rows = rows.filter(queue__in=queues)
    added = 0
    batch = list(rows[:limit])
    known = get_config().queues
    for name in sorted({row.queue for row in batch}):
        mine = [row for row in batch if row.queue == name]
        if name not in known:
            logger.error("spooled job(s) %s name queue %r, which is not in QUEUES any more: left in the spool",
                         ", ".join(row.job_id for row in mine), name)
            continue
        jobs = []
        for row in mine:
            items = msgpack.unpackb(bytes(row.fields), raw=True)
            jobs.append(NewJob(row.job_id, row.name, dict(zip(items[::2], items[1::2], strict=True)), row.mode,
                               row.score))
        replies = Queue(name, connection=connection)._write(jobs)
        added += sum(replies)
        SpooledJob.objects.filter(pk__in=[row.pk for row in mine]).delete()
        logger.info("spool: %d job(s) of queue %s added to Redis (%d existed already)", sum(replies), name,
                    len(mine) - sum(replies))
    return added


def flush_quietly(connection: redis.Redis, queues: list[str]) -> None:
    """:func:`flush` for a worker's keeper: Redis or database errors are for a later look; the thread's database
    connection is closed after."""
    global _last_error  # noqa: PLW0603 - one line per distinct failure, not one every few seconds
    try:
        while flush(connection, queues) >= FLUSH_LIMIT:
            pass
    except redis.RedisError as e:
        logger.debug("spool: Redis still unreachable (%s)", e)
    except Exception as e:  # a database that is down, or not migrated: say so (once), never stop the keeper
        if str(e) != _last_error:
            _last_error = str(e)
            logger.warning("spool: could not read the spooled jobs (%s: %s); run `manage.py migrate` if the table "
                           "is missing. Trying again every %g s", type(e).__name__, e, FLUSH_INTERVAL)
    else:
        _last_error = None
    finally:
        for connection_ in connections.all(initialized_only=True):  # this thread's: the keeper holds none open
            connection_.close()
