"""The queue facade: BullMQ's ``Queue`` API in Python, on an RQ queue that always speaks JSON."""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import uuid4

import msgpack
import redis
import rq
from django.db import transaction
from rq.exceptions import NoSuchJobError
from rq.serializers import JSONSerializer

from . import maintenance, schedulers, spool, tracing
from .conf import get_config, get_definition
from .connection import get_connection
from .events import publish
from .exceptions import InvalidJobData, InvalidJobOptions, UnknownJob
from .job import Job, RQJob, rq_time
from .options import JobOptions
from .payload import encode_payload
from .registry import get_job_definition
from .scripts import JOB_PREFIX, script

JobSpec = Mapping[str, Any]  # {"job": name or function, "data": {...}, "options": {...}}
COUNT_COMMANDS = 9  # the commands Queue.counts_on queues
COMPACT_VALUE_BYTES = 64  # Redis keeps a hash compact (listpack) while every value is at most this long
BLOCK_TIMEOUT_SLACK = 0.1  # seconds a Redis blocking call may overrun its timeout (1 / hz, default hz 10)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job checked and ready for the add script: its id, name, hash fields, mode (w|p|d) and score."""

    id: str
    name: str
    fields: dict[bytes, bytes]
    mode: str
    score: float


_options: dict[tuple[int, int], tuple[Any, JobOptions, JobOptions]] = {}


def _resolved_options(definition: Any, defaults: JobOptions) -> JobOptions:
    """A job definition's options over its queue's defaults, parsed once per (definition, defaults)."""
    key = (id(definition), id(defaults))
    found = _options.get(key)
    if found is None or found[0] is not definition or found[1] is not defaults:
        found = _options[key] = (definition, defaults, definition.resolve_options(defaults))
    return found[2]


@cache
def _json_path(path: str) -> bytes:
    return json.dumps(path).encode()


def limiter_args(queue: str) -> tuple[int, float]:
    """The take script's limiter arguments for ``queue``: (max, window seconds), or (0, 0) for none.

    The take script counts a job from the moment it is taken, which is the moment it starts (the worker runs it
    in-process, or forks at once). The window gets a small margin (1 %, at most 10 ms) for the time between that
    stamp and the first line of the job function.
    """
    definition = get_config().queues.get(queue)
    limiter = definition.limiter if definition else None
    if limiter is None:
        return 0, 0.0
    return limiter.max, limiter.duration + min(limiter.duration * 0.01, 0.01)


class Queue:
    """A queue from ``QUEUES``: add jobs to it, look them up, count them, pause it.

    Get one with :func:`get_queue`; it is cheap to build, so build it where you use it.
    """

    def __init__(self, name: str, *, connection: redis.Redis | None = None) -> None:
        self.definition = get_definition(name)
        self.name = name
        self.connection = connection if connection is not None else get_connection()
        timeout = self.definition.default_job_options.timeout
        from .rqqueue import RQQueue  # django-rq reads the settings when imported: not at this module's import

        self.rq = RQQueue(name, connection=self.connection, default_timeout=None if timeout is None else int(timeout))
        self.keys = self.rq.keys

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"

    def add(self, job: str | Callable[..., Any], data: dict[str, Any] | None = None, **options: Any) -> Job:
        """Add a job and return its handle (``.id``, ``.name``, ``.data``, ``.get_state()``).

        ``job`` is a registered job name or the ``@job`` function itself; ``data`` reaches the function
        as keyword arguments; ``options`` override the job's and the queue's defaults (see README).
        Adding a ``job_id`` that exists already adds nothing and returns the existing job. Inside
        ``transaction.atomic()`` the handle (and its id) is returned at once and the job is written to
        Redis when the transaction commits; a rollback writes nothing.

        Raises:
            UnknownJob: ``job`` is not registered.
            InvalidJobOptions: an option is unknown or out of range, or the job belongs to another queue.
            InvalidJobData: ``data`` is not small JSON (nothing is written).
        """
        return self._add([{"job": job, "data": data, "options": options}], bulk=False)[0]

    def add_bulk(self, jobs: Iterable[JobSpec]) -> list[Job]:
        """Add many jobs in one round trip: ``[{"job": ..., "data": {...}, "options": {...}}, ...]``.

        Every item is checked first; one bad item refuses the whole batch before anything is written.
        Returns the handles in order (for an existing ``job_id``, the existing job).

        Raises:
            UnknownJob, InvalidJobOptions, InvalidJobData: as ``add()``, the message naming the bad item.
        """
        return self._add(jobs, bulk=True)

    def _add(self, jobs: Iterable[JobSpec], *, bulk: bool) -> list[Job]:
        return self._submit([self._prepare_item(spec, index) if bulk else self._prepare(spec, index)
                             for index, spec in enumerate(jobs)])

    def add_named(self, job: Callable[..., Any], name: str, data: dict[str, Any], **options: Any) -> Job:
        """:meth:`add` for a job shown under another ``name`` than its function's (events, dashboard, logs): the
        runner of Django's ``@task`` functions (``queues.tasks``) adds each run under its task's dotted path."""
        new = self._prepare({"job": job, "data": data, "options": options}, 0)
        new = replace(new, name=name, fields={**new.fields, b"description": name.encode()})
        return self._submit([new])[0]

    def _submit(self, prepared: list[NewJob]) -> list[Job]:
        if not prepared:
            return []
        if tracing.ENABLED:
            with tracing.sending(self.name, prepared):
                return self._submit_now(prepared)
        return self._submit_now(prepared)

    def _submit_now(self, prepared: list[NewJob]) -> list[Job]:
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(lambda: self._write_at_commit(prepared))
            return [self._handle(new) for new in prepared]
        added = self._write(prepared)
        return [self._handle(new) if was_added else self._existing(new)
                for new, was_added in zip(prepared, added, strict=True)]

    def _write(self, prepared: list[NewJob]) -> list[int]:
        """Run the add script for checked jobs; per job, 1 when it was added and 0 when its id existed."""
        args: list[Any] = [self.rq.key, JOB_PREFIX, get_config().events_max_length]
        for new in prepared:
            args += [new.id, new.mode, new.score, -1, new.name,
                     msgpack.packb([item for pair in new.fields.items() for item in pair], use_bin_type=False)]
        return script(self.connection, "add")(keys=self.keys.for_add(), args=args)

    def _write_at_commit(self, prepared: list[NewJob]) -> None:
        """The write of jobs added in a transaction, once it committed: Redis unreachable, or refusing writes for now
        (full under ``noeviction``, a read-only replica after a failover, too few replicas), they are spooled to the
        database (``queues.spool``) instead of failing a request whose work is done."""
        try:
            self._write(prepared)
        except redis.RedisError as e:
            if not spool.refused_for_now(e):
                raise
            spool.spool(self.name, prepared, e)

    def _prepare_item(self, spec: JobSpec, index: int) -> NewJob:
        """:meth:`_prepare` for an item of ``add_bulk``: every error names the item, to find it among many."""
        try:
            return self._prepare(spec, index)
        except (UnknownJob, InvalidJobOptions, InvalidJobData) as e:
            where = f"add_bulk item {index}"
            raise type(e)(str(e) if str(e).startswith(where) else f"{where}: {e}") from None

    def _prepare(self, spec: JobSpec, index: int) -> NewJob:
        """Check one job and build its hash: RQ's fields as RQ writes them (``Job.to_dict``), less the empty ones
        (RQ reads a missing field as empty), and ``data`` as compact JSON while that keeps a small job within
        Redis's compact hash encoding (values of 64 bytes at most), else as RQ's zlib of it (RQ reads both)."""
        where = f"add({spec.get('job')!r})" if index == 0 else f"add_bulk item {index}"
        unknown = set(spec) - {"job", "data", "options"}
        if unknown:
            raise InvalidJobOptions(f"{where}: unknown key(s) {sorted(unknown)}; an item takes 'job', 'data' and "
                                    "'options'.")
        definition = get_job_definition(spec["job"])
        if definition.queue and definition.queue != self.name:  # "": a job of every queue (the @task runner)
            raise InvalidJobOptions(
                f"Job {definition.name!r} belongs to queue {definition.queue!r} (its @job decorator), not "
                f"{self.name!r}: add it with get_queue({definition.queue!r})."
            )
        options = _resolved_options(definition, self.definition.default_job_options)
        if spec.get("options"):
            options = JobOptions.parse(spec["options"], f"add({definition.name!r})", options)
        data = spec.get("data")
        encoded = encode_payload({} if data is None else data, get_config().max_payload_bytes)
        job_id = options.job_id or str(uuid4())
        now = time.time()
        due = options.due(now)
        stamp = rq_time(now).encode()
        call = b"[%s,null,[],%s]" % (_json_path(definition.path), encoded.encode())
        if len(call) > COMPACT_VALUE_BYTES:
            call = min(call, zlib.compress(call), key=len)
        retries = options.attempts - 1
        fields = {
            b"created_at": stamp, b"enqueued_at": stamp, b"data": call, b"description": definition.name.encode(),
            b"origin": self.name.encode(), b"status": b"scheduled" if due is not None else b"queued",
            b"timeout": b"%d" % (math.ceil(options.timeout) if options.timeout else rq.Queue.DEFAULT_TIMEOUT),
            b"result_ttl": b"%d" % options.remove_on_complete.ttl(),
            b"failure_ttl": b"%d" % options.remove_on_fail.ttl(),
        }
        if retries:
            fields[b"retries_left"] = b"%d" % retries
            fields[b"retry_intervals"] = json.dumps(options.backoff.base_delays(retries)).encode()
        for field, value in ((b"keep_completed", options.remove_on_complete.spec()),
                             (b"keep_failed", options.remove_on_fail.spec())):
            if value:
                fields[field] = value.encode()
        if options.backoff.jitter or options.backoff.type not in ("fixed", "exponential"):
            fields[b"backoff"] = options.backoff.spec().encode()
        if options.priority:
            fields[b"priority"] = b"%d" % options.priority
        if due is not None:
            return NewJob(job_id, definition.name, fields, "d", due)
        if options.priority:
            return NewJob(job_id, definition.name, fields, "p", options.priority)
        return NewJob(job_id, definition.name, fields, "w", 0)

    def _handle(self, new: NewJob) -> Job:
        return Job(new=(new.id, new.fields, self.connection))

    def _existing(self, new: NewJob) -> Job:
        existing = self.get_job(new.id)
        return existing if existing is not None else self._handle(new)

    def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or None when there is none (never added, or removed)."""
        try:
            return Job(RQJob.fetch(job_id, connection=self.connection, serializer=JSONSerializer))
        except NoSuchJobError:
            return None

    def get_job_counts(self) -> dict[str, int]:
        """How many jobs are in each state, in one round trip, without listing any job.

        ``paused`` counts the waiting and prioritized jobs a pause holds back (they are counted there too), and
        ``rate_limited`` those held back while :meth:`rate_limit` is in force or the ``limiter`` window is full.
        """
        pipe = self.connection.pipeline(transaction=False)
        read = self.counts_on(pipe)
        return read(pipe.execute())[0]

    def counts_on(self, pipe: Any) -> Callable[[list[Any]], tuple[dict[str, int], bool]]:
        """Queue the commands behind :meth:`get_job_counts` on ``pipe`` (:data:`COUNT_COMMANDS` of them), so a
        page can read many queues in one round trip; return the function that turns their replies into
        ``(counts, paused)`` (``paused`` being the flag, true even when the queue is empty)."""
        limit_max, limit_for = limiter_args(self.name)
        pipe.llen(self.keys.wait)
        pipe.zcard(self.keys.prioritized)
        pipe.zcard(self.keys.scheduled)
        pipe.zcard(self.rq.started_job_registry.key)
        pipe.zcard(self.rq.finished_job_registry.key)
        pipe.zcard(self.rq.failed_job_registry.key)
        pipe.exists(self.keys.paused)
        pipe.exists(self.keys.rate_limited)
        pipe.zcount(self.keys.limiter, f"({time.time() - limit_for:.6f}", "+inf")

        def read(replies: list[Any]) -> tuple[dict[str, int], bool]:
            waiting, prioritized, delayed, active, completed, failed, paused, limited, window = replies
            limited = limited or (limit_max and window >= limit_max)
            return ({"waiting": waiting, "prioritized": prioritized, "delayed": delayed, "active": active,
                     "completed": completed, "failed": failed, "paused": (waiting + prioritized) if paused else 0,
                     "rate_limited": (waiting + prioritized) if limited else 0}, bool(paused))

        return read

    def pause(self) -> None:
        """Stop every worker, on every host, from taking this queue's jobs; running jobs finish.

        New jobs are still accepted; other queues keep flowing. The state is in Redis, so it outlives
        worker restarts until :meth:`resume`.
        """
        pipe = self.connection.pipeline()
        pipe.set(self.keys.paused, "1")
        publish(pipe, self.name, "paused")
        pipe.execute()

    def resume(self) -> None:
        """Let workers take this queue's jobs again (and wake an idle one)."""
        pipe = self.connection.pipeline()
        pipe.delete(self.keys.paused)
        pipe.zadd(self.keys.marker, {"0": 0})
        publish(pipe, self.name, "resumed")
        pipe.execute()

    def is_paused(self) -> bool:
        return bool(self.connection.exists(self.keys.paused))

    def get_metrics(self, kind: str, minutes: int = 60) -> dict[str, Any]:
        """Jobs ``"completed"`` or ``"failed"`` per minute, as BullMQ's ``getMetrics``, in one round trip.

        Returns ``{"total": all-time count, "per_minute": [counts, oldest first, the last one the current minute,
        exactly minutes long], "end": that last minute (epoch minutes)}``. Minutes older than
        ``QUEUES_METRICS_MINUTES`` (default a day) are not kept, so they read as 0.

        Raises:
            ValueError: ``kind`` is neither "completed" nor "failed", or ``minutes`` is not a positive integer.
        """
        pipe = self.connection.pipeline(transaction=False)
        read = self.metrics_on(pipe, kind, minutes)
        return read(pipe.execute()[0])

    def metrics_on(self, pipe: Any, kind: str, minutes: int = 60) -> Callable[[list[Any]], dict[str, Any]]:
        """Queue the one command behind :meth:`get_metrics` on ``pipe``; return the function that reads its reply.

        Raises:
            ValueError: as :meth:`get_metrics`.
        """
        if kind not in ("completed", "failed"):
            raise ValueError(f"get_metrics takes 'completed' or 'failed', not {kind!r}.")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            raise ValueError(f"get_metrics takes a positive whole number of minutes, not {minutes!r}.")
        key = self.keys.metrics_completed if kind == "completed" else self.keys.metrics_failed
        end = int(time.time() // 60)
        pipe.hmget(key, ["total", *(str(minute) for minute in range(end - minutes + 1, end + 1))])

        def read(reply: list[Any]) -> dict[str, Any]:
            total, *counts = reply
            return {"total": int(total or 0), "per_minute": [int(count or 0) for count in counts], "end": end}

        return read

    def rate_limit(self, seconds: float | timedelta) -> None:
        """Start no job of this queue, on any worker, for ``seconds`` (BullMQ's ``worker.rateLimit``).

        For a job that learns the remote API said "429 Too Many Requests": call this, then raise so the
        job is retried after its backoff.
        """
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise InvalidJobOptions(f"rate_limit takes a number of seconds > 0, not {seconds!r}.")
        self.connection.set(self.keys.rate_limited, "1", px=max(1, round(seconds * 1000)))

    # --- job schedulers (queues.schedulers does the work) -------------------------------------------------------

    def upsert_job_scheduler(self, scheduler_id: str, job: str | Callable[..., Any],
                             data: dict[str, Any] | None = None, *, every: float | timedelta | None = None,
                             pattern: str | None = None, tz: str | None = None, start_date: datetime | None = None,
                             end_date: datetime | None = None, limit: int | None = None, immediately: bool = False,
                             **options: Any) -> dict[str, Any]:
        """Create or replace the job scheduler ``scheduler_id`` (BullMQ's ``upsertJobScheduler``); return it as
        :meth:`get_job_scheduler` does.

        It adds ``job`` with ``data`` every ``every`` seconds, or at the times of the cron ``pattern`` (5 fields, or
        6 with seconds first) in ``tz`` (default ``TIME_ZONE``), from ``start_date`` until ``end_date`` or ``limit``
        runs; ``immediately`` runs it once now. ``options`` are every run's job options (attempts, backoff,
        priority, retention, timeout). Each tick adds one job, ``repeat-<id>-<tick ms>``, whatever the number of
        workers. Upserting a changed definition replaces the pending run with one that follows it; upserting the
        same definition again changes nothing.

        Raises:
            InvalidScheduler: a bad id, both or neither of every/pattern, a bad cron, tz, date or limit.
            UnknownJob, InvalidJobOptions, InvalidJobData: as :meth:`add`.
        """
        definition = schedulers.define(scheduler_id, self.name, job, data, every=every, pattern=pattern, tz=tz,
                                       start_date=start_date, end_date=end_date, limit=limit,
                                       immediately=immediately, **options)
        return self.upsert_job_scheduler_definition(definition)

    def upsert_job_scheduler_definition(self, definition: schedulers.Definition) -> dict[str, Any]:
        """:meth:`upsert_job_scheduler` for a definition checked already (``QUEUES_JOB_SCHEDULERS``)."""
        return schedulers.Schedulers(self).upsert(definition)

    def remove_job_scheduler(self, scheduler_id: str) -> bool:
        """Remove a job scheduler and its pending run (a run already started finishes); False when there is none."""
        return schedulers.Schedulers(self).remove(scheduler_id)

    def get_job_scheduler(self, scheduler_id: str) -> dict[str, Any] | None:
        """The job scheduler ``scheduler_id``, or None: ``{"id", "job", "every" | "pattern", "tz", "next" (aware
        datetime, None once ended), "last", "iteration_count", "limit", "start_date", "end_date", "data",
        "options", "origin" ("api" or "settings"), "rule" (text), "ended"}``."""
        return schedulers.Schedulers(self).get(scheduler_id)

    def get_job_schedulers(self) -> list[dict[str, Any]]:
        """Every job scheduler of this queue, soonest next run first (see :meth:`get_job_scheduler`)."""
        return schedulers.Schedulers(self).all()

    def run_job_scheduler_now(self, scheduler_id: str) -> str:
        """Add one run of a job scheduler now, outside its rhythm; return the job id.

        Raises:
            InvalidScheduler: this queue has no such scheduler.
        """
        return schedulers.Schedulers(self).run_now(scheduler_id)

    # --- management (queues.maintenance does the work) -------------------------------------------------------

    def get_jobs(self, state: str, start: int = 0, end: int = -1) -> list[Job]:
        """The jobs in ``state``, ranks ``start`` to ``end`` inclusive (BullMQ's ``getJobs``; -1 is the last).

        ``state`` is waiting, prioritized, delayed, active, completed or failed. Waiting and prioritized jobs
        come in the order workers take them, delayed ones by due time, completed and failed ones newest first.

        Raises:
            InvalidJobOptions: an unknown ``state``.
        """
        return maintenance.fetch_jobs(self.connection, maintenance.job_ids(self.connection, self.name, state,
                                                                           start, end))

    def get_failed(self, start: int = 0, end: int = -1) -> list[Job]:
        """The failed jobs, newest first: ``get_jobs("failed", start, end)``."""
        return self.get_jobs("failed", start, end)

    def retry_jobs(self, state: str = "failed", count: int | None = None) -> int:
        """Move up to ``count`` (None: all) failed (or completed) jobs back to waiting, oldest first.

        Each job's attempts start again from zero and a ``waiting`` event is published for it. Returns how many
        jobs were moved. Runs in batches of ``maintenance.BATCH``, so it never blocks Redis for long.

        Raises:
            InvalidJobOptions: ``state`` is not "failed" or "completed", or ``count`` is negative.
        """
        return maintenance.retry_jobs(self.connection, self.name, state, count)

    def remove_job(self, job_id: str) -> bool:
        """Remove a job of this queue and everything it left in Redis; publish ``removed``.

        Returns False when this queue has no job with that id.

        Raises:
            QueueBusy: the job is running; remove it once it has ended.
        """
        return maintenance.remove_job(self.connection, self.name, job_id)

    def clean(self, grace: float | timedelta, limit: int | None = 1000, state: str = "completed") -> list[str]:
        """Remove up to ``limit`` jobs in ``state`` older than ``grace`` seconds; return their ids (BullMQ).

        ``state``: completed, failed, delayed, waiting or prioritized. Age counts from when the job ended, else
        started, else was added. ``limit`` None or 0 removes every such job. Publishes one ``cleaned`` event.

        Raises:
            InvalidJobOptions: an unknown ``state``, or a negative ``grace`` or ``limit``.
        """
        return maintenance.clean(self.connection, self.name, grace, limit, state)

    def drain(self, include_delayed: bool = False) -> int:  # noqa: FBT001,FBT002 - BullMQ's drain(delayed)
        """Remove every waiting and prioritized job (and delayed ones with ``include_delayed``); return how many.

        Active, completed and failed jobs stay. Publishes ``drained``.
        """
        return maintenance.drain(self.connection, self.name, include_delayed=include_delayed)

    def obliterate(self, force: bool = False) -> int:  # noqa: FBT001,FBT002 - BullMQ's obliterate({force})
        """Remove this queue from Redis with every job and key of it; return the number of jobs removed.

        The queue is paused first, so no worker takes a job meanwhile; afterwards it is a new, empty queue.

        Raises:
            QueueBusy: jobs are active and ``force`` is not set (nothing is removed). With ``force``, a job that
                is still running is removed, but its worker writes its outcome back when it ends.
        """
        return maintenance.obliterate(self.connection, self.name, force=force)


def get_queue(name: str) -> Queue:
    """The queue ``name`` from ``QUEUES``.

    Raises:
        InvalidQueue: ``QUEUES`` does not define ``name`` (or has errors; see ``manage.py check``).
    """
    return Queue(name)
