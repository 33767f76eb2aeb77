"""What the admin dashboard shows, read from Redis: per-queue stats, health marks, job rows, the connection.

Every read here costs the same whatever the number of jobs: counts are ``LLEN`` / ``ZCARD`` (``get_job_counts``),
the chart comes from the per-minute metrics hashes, and a queue page lists one page of jobs at most. The rows of
all queues take two round trips (:func:`read_stats`). The one exception, :func:`clean_count` (what a clean's
confirmation says it removes), reads every job of one state, a batch a call, as the clean itself does.

Health marks (cheap, O(1) per queue):

- **no worker**: no live worker serves the queue (RQ's worker set of the queue, its expired members left out).
- **failures rising**: more jobs failed in the last 5 minutes (the current one included) than in the 5 before,
  from the ``failed`` per-minute metric.
- **backlog growing**: more jobs wait (waiting + prioritized) now than 5 to 15 minutes ago. Each read of the
  dashboard (the page refreshes itself every few seconds) keeps one sample a minute per queue in a small capped
  list, ``rq:dashboard:backlog:<queue>`` (16 entries, expiring after an hour unread), so the mark needs the
  dashboard to have been open 5 minutes earlier.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.urls import NoReverseMatch, reverse
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from .conf import QueueDefinition, get_config
from .connection import connection_kwargs, get_connection, where
from .job import Job
from .maintenance import count_old
from .queue import COUNT_COMMANDS, Queue
from .scripts import QueueKeys

COUNT_STATES = ("waiting", "prioritized", "delayed", "active", "completed", "failed", "paused", "rate_limited")
JOB_STATES = ("active", "waiting", "prioritized", "delayed", "failed", "completed")
CHART_MINUTES = 60
HEALTH_WINDOW = 5  # minutes compared by "failures rising" and "backlog growing"
BACKLOG_SAMPLES = 16  # one a minute: enough to look 5 to 15 minutes back
BACKLOG_TTL = 3600
CHART_WIDTH, CHART_HEIGHT = 60, 20  # the SVG viewBox: one unit per minute

# Keep one backlog sample per minute: push only when the newest sample is from an earlier minute.
SAMPLE_BACKLOG = """
-- KEYS: the samples list, the waiting list, the prioritized set; ARGV: epoch minute, samples kept, ttl seconds
local head = redis.call('LINDEX', KEYS[1], 0)
if not head or tonumber(string.match(head, '^(%d+):')) < tonumber(ARGV[1]) then
  local backlog = redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
  redis.call('LPUSH', KEYS[1], ARGV[1] .. ':' .. backlog)
  redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('LRANGE', KEYS[1], 0, -1)
"""


def backlog_key(queue: str) -> str:
    return QueueKeys.of(queue).backlog


@dataclass
class Metric:
    total: int
    per_minute: list[int]

    @property
    def last_hour(self) -> int:
        return sum(self.per_minute)


@dataclass
class QueueStats:
    """One queue's row on the dashboard."""

    name: str
    counts: dict[str, int]
    paused: bool
    limiter: str
    concurrency: int
    workers: int
    completed: Metric
    failed: Metric
    health: list[str] = field(default_factory=list)

    @property
    def chart(self) -> dict[str, str]:
        return chart(self.completed.per_minute, self.failed.per_minute)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "counts": self.counts, "paused": self.paused, "limiter": self.limiter,
            "concurrency": self.concurrency, "workers": self.workers, "health": self.health,
            "completed": {"total": self.completed.total, "per_minute": self.completed.per_minute},
            "failed": {"total": self.failed.total, "per_minute": self.failed.per_minute},
        }


def queue_names() -> list[str]:
    return list(get_config().queues)


def limiter_text(definition: QueueDefinition) -> str:
    limiter = definition.limiter
    if limiter is None:
        return ""
    return f"{limiter.max} per {limiter.duration:g} s"


def _metric(found: dict[str, Any]) -> Metric:
    return Metric(total=int(found["total"]), per_minute=[int(v) for v in found["per_minute"]])


def _samples(raw: list[bytes]) -> list[tuple[int, int]]:
    """The backlog samples the sampling script returns, newest first, as (minute, backlog)."""
    samples = []
    for item in raw:
        at, _, value = item.decode().partition(":")
        samples.append((int(at), int(value)))
    return samples


def health_marks(*, workers: int, failed_per_minute: list[int], backlog: int,
                 samples: list[tuple[int, int]], now_minute: int) -> list[str]:
    """The health marks of a queue (see the module docstring); an empty list means healthy."""
    marks = []
    if workers == 0:
        marks.append("no worker")
    recent = sum(failed_per_minute[-HEALTH_WINDOW:])
    before = sum(failed_per_minute[-2 * HEALTH_WINDOW:-HEALTH_WINDOW])
    if recent > before:
        marks.append("failures rising")
    past = [value for at, value in samples if now_minute - 3 * HEALTH_WINDOW <= at <= now_minute - HEALTH_WINDOW]
    if backlog > 0 and past and backlog > past[0]:  # samples are newest first: the one nearest 5 minutes ago
        marks.append("backlog growing")
    return marks


def queue_stats(name: str) -> QueueStats:
    """The dashboard row of queue ``name`` (see :func:`read_stats`).

    Raises:
        redis.RedisError: Redis cannot be reached.
    """
    return read_stats([name])[0]


def all_stats() -> list[QueueStats]:
    """The dashboard row of every queue in ``QUEUES`` (see :func:`read_stats`).

    Raises:
        redis.RedisError: Redis cannot be reached.
    """
    return read_stats(queue_names())


def read_stats(names: list[str]) -> list[QueueStats]:
    """The rows of the queues ``names`` in two round trips, whatever the number of queues or of jobs.

    The first pipeline reads every queue's counts, metrics, worker set and backlog samples (keeping this
    minute's sample); the second checks which of the workers named are alive (RQ's ``Worker.all`` rule: a
    worker whose key has expired is gone).

    Raises:
        redis.RedisError: Redis cannot be reached.
    """
    connection = get_connection()
    minute = int(time.time() // 60)
    pipe = connection.pipeline(transaction=False)
    readers = []
    for name in names:
        queue = Queue(name, connection=connection)
        keys = queue.keys
        readers.append((queue, queue.counts_on(pipe), queue.metrics_on(pipe, "completed", CHART_MINUTES),
                        queue.metrics_on(pipe, "failed", CHART_MINUTES)))
        pipe.smembers(WORKERS_BY_QUEUE_KEY % name)
        pipe.eval(SAMPLE_BACKLOG, 3, keys.backlog, keys.wait, keys.prioritized, minute, BACKLOG_SAMPLES, BACKLOG_TTL)
    replies = pipe.execute()
    per_queue = COUNT_COMMANDS + 4
    worker_sets = [sorted(replies[i * per_queue + COUNT_COMMANDS + 2]) for i in range(len(names))]
    pipe = connection.pipeline(transaction=False)
    for members in worker_sets:
        for member in members:
            pipe.exists(member)
    alive = iter(pipe.execute())
    rows = []
    for i, (queue, read_counts, read_completed, read_failed) in enumerate(readers):
        at = i * per_queue
        counts, paused = read_counts(replies[at:at + COUNT_COMMANDS])
        completed = _metric(read_completed(replies[at + COUNT_COMMANDS]))
        failed = _metric(read_failed(replies[at + COUNT_COMMANDS + 1]))
        workers = sum(1 for _member in worker_sets[i] if next(alive))
        samples = _samples(replies[at + COUNT_COMMANDS + 3])
        backlog = counts["waiting"] + counts["prioritized"]
        rows.append(QueueStats(
            name=queue.name, counts={state: int(counts.get(state, 0)) for state in COUNT_STATES}, paused=paused,
            limiter=limiter_text(queue.definition), concurrency=queue.definition.concurrency, workers=workers,
            completed=completed, failed=failed,
            health=health_marks(workers=workers, failed_per_minute=failed.per_minute, backlog=backlog,
                                samples=samples, now_minute=minute),
        ))
    return rows


def chart(completed: list[int], failed: list[int]) -> dict[str, Any]:
    """The bars of the last hour's chart, in SVG units: one per minute with jobs, failed stacked on completed,
    scaled so that the busiest minute fills the height."""
    top = max([c + f for c, f in zip(completed, failed, strict=True)] + [1])
    scale = CHART_HEIGHT / top
    bars = []
    for minute, (done, bad) in enumerate(zip(completed, failed, strict=True)):
        if done:
            bars.append({"x": minute, "y": f"{CHART_HEIGHT - done * scale:.2f}", "h": f"{done * scale:.2f}",
                         "kind": "completed", "n": done})
        if bad:
            bars.append({"x": minute, "y": f"{CHART_HEIGHT - (done + bad) * scale:.2f}", "h": f"{bad * scale:.2f}",
                         "kind": "failed", "n": bad})
    return {"bars": bars, "max": top}


def connection_label() -> str:
    """Where the queues' Redis is: ``host:port/db``, ``(TLS)`` when encrypted, or the Sentinels and the primary's
    name; never a user name or password."""
    return where(get_config().redis)


def redis_error(error: redis.RedisError) -> str:
    """A message for an unreachable Redis that names the server and the reason, never the password."""
    text = f"{type(error).__name__}: {error}"
    for secret in (get_config().redis.get("PASSWORD"), connection_kwargs(get_config().redis).get("password")):
        if secret:
            text = text.replace(str(secret), "********")
    return f"Redis at {connection_label()} could not be reached ({text})."


def django_rq_job_url(queue: str, job_id: str) -> str | None:
    """django-rq's page for the job (its admin keys queues by their index in RQ_QUEUES, sorted by name)."""
    from django_rq.settings import get_queues_map

    index = get_queues_map().get(queue)
    if index is None:
        return None
    for name in ("django_rq:job_detail", "admin:django_rq_job_detail"):
        try:
            return reverse(name, args=[index, job_id])
        except NoReverseMatch:
            continue
    return None


@dataclass
class JobRow:
    """A job on the queue page."""

    id: str
    name: str
    url: str | None
    attempts_made: int
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    priority: int | None = None
    due: datetime | None = None
    progress: Any = None
    error: str = ""
    traceback: str = ""

    @property
    def progress_percent(self) -> float | None:
        value = self.progress
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def job_rows(queue: Queue, state: str, start: int, end: int) -> list[JobRow]:
    """The jobs of ``state`` from ``start`` to ``end`` (inclusive), with what the page shows for that state."""
    jobs: list[Job] = queue.get_jobs(state, start, end)
    extra: list[Any] = []
    if jobs and state in ("active", "delayed"):
        pipe = queue.connection.pipeline(transaction=False)
        for job in jobs:
            if state == "active":
                pipe.hget(job.rq_job.key, "progress")
            else:
                pipe.zscore(queue.keys.scheduled, job.id)
        extra = pipe.execute()
    rows = []
    for index, job in enumerate(jobs):
        rq_job = job.rq_job
        row = JobRow(id=job.id, name=job.name, url=django_rq_job_url(queue.name, job.id),
                     attempts_made=job.attempts_made, created_at=_when(rq_job.created_at),
                     started_at=_when(rq_job.started_at), ended_at=_when(rq_job.ended_at),
                     priority=getattr(rq_job, "priority", None))
        if state == "active":
            raw = extra[index]
            row.progress = json.loads(raw) if raw else 0
        elif state == "delayed" and extra[index] is not None:
            row.due = datetime.fromtimestamp(float(extra[index]), UTC)
        elif state == "failed":
            result = rq_job.latest_result()
            row.traceback = (getattr(result, "exc_string", None) or "") if result is not None else ""
            lines = [line for line in row.traceback.strip().splitlines() if line.strip()]
            row.error = lines[-1] if lines else ""
        rows.append(row)
    return rows


def active_progress(queue: Queue, limit: int) -> dict[str, Any]:
    """The progress of the first ``limit`` active jobs, by id (what the queue page refreshes in place)."""
    return {row.id: row.progress for row in job_rows(queue, "active", 0, limit - 1)}


def clean_count(queue: Queue, state: str, grace: timedelta) -> int:
    """How many ``state`` jobs of ``queue`` are older than ``grace`` now: what ``Queue.clean`` with no limit would
    remove (``queues.maintenance.count_old``, the clean's own script removing nothing, a batch a call).

    Raises:
        redis.RedisError: Redis cannot be reached.
    """
    return count_old(queue.connection, queue.name, state, grace)
