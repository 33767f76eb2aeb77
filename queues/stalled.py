"""Stalled jobs: a job whose worker stopped heart-beating (killed, host lost) goes back to waiting.

Every worker heart-beats its running job in RQ's started registry (``rq:wip:<queue>``, scored by the time
the heartbeat runs out: two thirds of the queue's ``stalled_interval``). Every worker also looks, every
third of that interval, for entries whose time ran out; one worker at a time per queue does the work (a
short lock). Such a job gets a ``stalled`` event and goes back to the front of its queue, its attempts
untouched (a stall is not a failed attempt, as in BullMQ); after ``max_stalled_count`` stalls it fails
with a reason that says so. A job process dies with its worker (``PR_SET_PDEATHSIG``), so a job is
never run again while its first run is still alive.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.job_lifecycle import record_job_failure
from rq.serializers import JSONSerializer

from .events import publish
from .job import Job, RQJob, send
from .signals import job_stalled

logger = logging.getLogger("queues.worker")


def recover_stalled(queue: Any, *, max_stalled_count: int, lock_for: float, owner: str) -> list[str]:
    """Put the stalled jobs of ``queue`` (an ``RQQueue``) back to waiting, or fail them; return their ids.

    Does nothing when another worker holds the check lock for this queue (``lock_for`` seconds).
    """
    connection: redis.Redis = queue.connection
    if not connection.set(f"rq:stalled-check:{queue.name}", owner, nx=True, px=max(1, int(lock_for * 1000))):
        return []
    registry = queue.started_job_registry
    stalled = []
    for member in connection.zrangebyscore(registry.key, 0, time.time()):
        if not connection.zrem(registry.key, member):
            continue  # another checker took it
        job_id = registry.parse_job_id(member)
        try:
            job = RQJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) != JobStatus.STARTED:
            continue  # finished meanwhile: a leftover entry, not a stall
        count = int(connection.hincrby(job.key, "stalled_count", 1))
        with connection.pipeline() as pipe:
            if count > max_stalled_count:
                reason = (f"job stalled more than allowable limit ({count} stalls, max_stalled_count "
                          f"{max_stalled_count}): its worker stopped while running it")
                record_job_failure(job, reason, pipe)
                logger.error("job id=%s name=%s queue=%s failed: %s", job.id, job.description, queue.name, reason)
            else:
                queue.requeue(job, pipe)
                logger.warning("job id=%s name=%s queue=%s stalled (its worker stopped heart-beating); back to "
                               "waiting, stall %s of %s allowed", job.id, job.description, queue.name, count,
                               max_stalled_count)
            publish(pipe, queue.name, "stalled", job_id=job.id, name=job.description, stalled_count=count,
                    failed=int(count > max_stalled_count))
            pipe.execute()
        send(job_stalled, Job(job), stalled_count=count)
        stalled.append(job.id)
    return stalled
