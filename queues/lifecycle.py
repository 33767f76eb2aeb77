"""A worker's side of the job lifecycle: take a job under a lock, run it, record the outcome under that lock.

The scripts are in ``queues/lua`` (BullMQ's layout): ``take`` (moveToActive), ``finish`` (moveToFinished, which
also takes the next job, so a busy worker spends one round trip per job), ``extend`` (extendLock) and
``stalled`` (moveStalledJobsToWait). The invariants (shared/DESIGN.md, "The hot path's invariants"):

- A taken job is in the active registry (RQ's ``rq:wip:<queue>``) under the member ``<job id>:<lock token>``, scored
  by the lock's expiry, from the same step that popped it: it is always in exactly one structure.
- The worker extends its locks while jobs run; an outcome is written only while the lock is held. A job whose lock
  ran out went back to waiting (and maybe to another worker): the late outcome is refused ("Missing lock").
- Every call of the hot path goes out on a client that never re-sends by itself. When a reply is lost, the worker
  waits for Redis and sends the same call again with its token marked for reclaim: a take that ran hands back the
  job it took instead of taking a second one, and a finish that ran is refused by its own missing lock.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import secrets
import threading
import time
import zlib
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis
from rq.defaults import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL

from .conf import get_config, get_definition
from .job import EVENT_RETURN_VALUE_MAX_BYTES, FAILED_REASON_MAX_CHARS, RQJob, rq_time
from .queue import limiter_args
from .scripts import JOB_PREFIX, PROMOTE_LIMIT, RESULTS_PREFIX, QueueKeys, script

logger = logging.getLogger("queues.worker")
STALL_BATCH = 100  # stalled jobs one call of the stalled script moves at most


@dataclass(slots=True)
class Taken:
    """A job this worker holds the lock of."""

    queue: str
    id: str
    token: str
    fields: dict[bytes, bytes]
    started: float = field(default_factory=time.monotonic)
    lost: bool = False  # its lock ran out and another worker may run it: its outcome will not be written
    abandoned: bool = False  # failed by the keeper past its timeout (threads mode): its thread's result is ignored
    deadline: float | None = None  # threads mode: when the keeper fails it (time.monotonic())

    @property
    def member(self) -> str:
        return f"{self.id}:{self.token}"


@dataclass(slots=True)
class Outcome:
    """What a run ended with, as the finish script writes it."""

    kind: str  # completed | failed | retry | requeue
    ttl: int = -1
    keep: str = ""
    due: float = 0.0
    hash_items: list[Any] = field(default_factory=list)
    result_items: list[Any] = field(default_factory=list)
    event_items: list[Any] = field(default_factory=list)
    # for logs and signals
    attempts_made: int = 0
    reason: str = ""
    return_value: Any = None
    error: BaseException | None = None

    def to_json(self) -> str:
        """The outcome as a job process hands it to its worker (fork mode): everything but the objects."""
        data = {name: getattr(self, name) for name in ("kind", "ttl", "keep", "due", "hash_items", "result_items",
                                                        "event_items", "attempts_made", "reason", "return_value")}
        data["error"] = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
        return json.dumps(data, default=str)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        """The outcome a job process handed over; its error (for the signals) comes back as an ``Exception`` whose
        message is ``"<class name>: <message>"`` (the exception object itself stayed in the job process)."""
        data = json.loads(text)
        error = data.pop("error", None)
        return cls(**data, error=Exception(error) if error else None)


def attempts_before(job: RQJob) -> int:
    """Runs that failed before this one (``Job.attempts_made`` while the job runs)."""
    made = job.number_of_retries or 0
    intervals = job.retry_intervals
    if job.retries_left is not None and isinstance(intervals, list):
        made += max(len(intervals) - job.retries_left, 0)
    return made


def failed_reason(error: BaseException) -> str:
    """BullMQ's ``failedReason``: ``ValueError: boom``, at most 1,000 characters."""
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return reason[:FAILED_REASON_MAX_CHARS]


def completed(job: RQJob, value: Any, worker_name: str) -> Outcome:
    """The outcome of a run that returned ``value``; one JSON cannot carry is stored as RQ's marker, with a warning."""
    try:
        encoded = json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):  # not JSON; an int past the digit limit; nested too deep
        from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD

        kind = type(value)
        logger.warning("job id=%s name=%s queue=%s returned a value of type %s, which JSON cannot carry: stored %r as "
                       "its result instead; return plain data (dicts, lists, str, numbers) or ids",
                       job.id, job.description or job.func_name, job.origin,
                       kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}",
                       UNSERIALIZABLE_RETURN_VALUE_PAYLOAD)
        value = UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
        encoded = json.dumps(value)
    ttl = job.result_ttl if job.result_ttl is not None else DEFAULT_RESULT_TTL
    result = ["type", "1", "worker_name", worker_name]
    if value is not None:
        result += ["return_value", b64encode(encoded.encode()).decode()]
    return Outcome("completed", ttl=ttl, keep=job.keep_completed, result_items=result,
                   event_items=["return_value", encoded if len(encoded) <= EVENT_RETURN_VALUE_MAX_BYTES else "",
                                "prev", "active"],
                   attempts_made=attempts_before(job) + 1, return_value=value)


def failed(job: RQJob, error: BaseException, exc_string: str, worker_name: str, *, retry: bool,
           wait: float = 0.0) -> Outcome:
    """The outcome of a run that raised: a retry after ``wait`` seconds, or the end."""
    reason = failed_reason(error)
    made = attempts_before(job) + 1
    result = ["type", "2", "worker_name", worker_name,
              "exc_string", b64encode(zlib.compress(exc_string.encode())).decode()]
    if retry:
        due = time.time() + wait
        left = (job.retries_left or 1) - 1
        return Outcome("retry", due=due, hash_items=["retries_left", left, "exc_info", exc_string],
                       result_items=result, event_items=["attempts_made", made, "due", f"{due:.6f}"],
                       attempts_made=made, reason=reason, error=error)
    ttl = job.failure_ttl if job.failure_ttl is not None else DEFAULT_FAILURE_TTL
    return Outcome("failed", ttl=ttl, keep=job.keep_failed, hash_items=["exc_info", exc_string],
                   result_items=result, event_items=["failed_reason", reason, "attempts_made", made, "prev", "active"],
                   attempts_made=made, reason=reason, error=error)


REQUEUE = Outcome("requeue")


class Lifecycle:
    """One worker's calls into the lifecycle scripts for its queues; keys and fixed arguments are built once."""

    def __init__(self, connection: redis.Redis, queues: list[str], worker_name: str) -> None:
        self.connection = connection  # a client that never re-sends a command by itself (see module docstring)
        self.queues = queues
        self.worker_name = worker_name
        self.keys = {name: QueueKeys.of(name) for name in queues}
        self.take_keys = [key for name in queues for key in self.keys[name].for_take()]
        self.markers = [self.keys[name].marker for name in queues]
        self.finish_keys = {name: self.keys[name].for_finish() for name in queues}
        self.finish_and_take_keys = {name: self.finish_keys[name] + self.take_keys for name in queues}
        self.limits = [value for name in queues for value in limiter_args(name)]
        definitions = [get_definition(name) for name in queues]
        self.stalled_interval = min(definition.stalled_interval for definition in definitions)
        self.lock_for = self.stalled_interval * 2 / 3  # extended every third: two chances before it runs out
        config = get_config()
        self.events_max_length = config.events_max_length
        self.metrics_minutes = config.metrics_minutes
        self._take = _Direct(connection, script(connection, "take"))
        self._finish = _Direct(connection, script(connection, "finish"))
        self._extend = script(connection, "extend")
        self._stalled = script(connection, "stalled")
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        for call in os.environ.get("QUEUES_TEST_LOSE_REPLY", "").split(","):  # fault tests only: see _lose_reply
            if call in ("take", "finish"):
                setattr(self, f"_{call}", _lose_reply(connection, getattr(self, f"_{call}")))

    def token(self) -> str:
        """A lock token no other take of any worker uses."""
        return f"{self._prefix}{next(self._counter):x}"

    def _take_args(self, token: str, *, reclaim: bool, now: float | None = None,
                   now_text: str | None = None) -> list[Any]:
        if now is None:
            now = time.time()
        return [f"{now:.6f}", now_text or rq_time(now), JOB_PREFIX, PROMOTE_LIMIT, self.events_max_length, token,
                f"{now + self.lock_for:.6f}", self.worker_name, "1" if reclaim else "0", *self.limits]

    def _read_take(self, reply: list[Any], token: str) -> tuple[Taken | None, float | None]:
        number, job_id, rest = reply
        if number:
            fields = dict(zip(rest[::2], rest[1::2], strict=True))
            return Taken(self.queues[int(number) - 1], job_id.decode(), token, fields), None
        wake = float(rest)
        return None, (wake if wake >= 0 else None)

    def take(self, token: str, *, reclaim: bool = False) -> tuple[Taken | None, float | None]:
        """Take the next job under ``token``: ``(taken, None)``, or ``(None, the next due time or None)``."""
        reply = self._take(keys=self.take_keys, args=self._take_args(token, reclaim=reclaim))
        return self._read_take(reply, token)

    def finish(self, taken: Taken, outcome: Outcome, next_token: str | None, *,
               reclaim: bool = False) -> tuple[bool, tuple[Taken | None, float | None] | None]:
        """Record ``outcome`` under ``taken``'s lock; with ``next_token``, take the next job in the same call.

        Returns whether the lock was held (False: nothing was written, "Missing lock"), and the take's result.
        """
        now = time.time()
        now_text = rq_time(now)
        keys = self.finish_keys[taken.queue]
        args: list[Any] = [taken.id, taken.token, outcome.kind, f"{now:.6f}", now_text, JOB_PREFIX,
                           RESULTS_PREFIX, outcome.ttl, outcome.keep, int(now // 60), self.metrics_minutes,
                           self.events_max_length, f"{outcome.due:.6f}", len(outcome.hash_items),
                           len(outcome.result_items), len(outcome.event_items), *outcome.hash_items,
                           *outcome.result_items, *outcome.event_items]
        if next_token is not None:
            keys = self.finish_and_take_keys[taken.queue]
            args += self._take_args(next_token, reclaim=reclaim, now=now, now_text=now_text)
        reply = self._finish(keys=keys, args=args)
        held = reply[0] == 1
        if next_token is None:
            return held, None
        return held, self._read_take(reply[1], next_token)

    def extend(self, held: list[Taken]) -> list[Taken]:
        """Extend the locks of ``held``; return the ones whose lock is gone."""
        if not held:
            return []
        until = f"{time.time() + self.lock_for:.6f}"
        replies = self._extend(keys=[self.keys[taken.queue].active for taken in held],
                               args=[until, *(taken.member for taken in held)])
        return [taken for taken, kept in zip(held, replies, strict=True) if not kept]

    def recover_stalled(self, queue: str, *, member: str = "", reason: str = "") -> list[tuple[str, int, bool]]:
        """Move ``queue``'s jobs whose lock ran out back to waiting (or fail them); ``member``: that one job, now.

        Without ``member``, one worker at a time per queue does it (a lock of a third of ``stalled_interval``).
        Returns ``(job id, stall count, failed)`` for each job moved.
        """
        definition = get_definition(queue)
        now = time.time()
        reason = reason or (f"job stalled more than allowable limit (max_stalled_count "
                            f"{definition.max_stalled_count}): its worker stopped while running it")
        check_lock = "0" if member else str(max(1, int(definition.stalled_interval / 3 * 1000)))
        reply = self._stalled(keys=self.keys[queue].for_stalled(), args=[
            f"{now:.6f}", rq_time(now), JOB_PREFIX, RESULTS_PREFIX, definition.max_stalled_count, STALL_BATCH,
            self.events_max_length, check_lock, self.worker_name, int(now // 60), self.metrics_minutes, member,
            reason, b64encode(zlib.compress(reason.encode())).decode()])
        return [(reply[i].decode(), int(reply[i + 1]), bool(reply[i + 2])) for i in range(0, len(reply), 3)]

    def block(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a job to be added to one of the queues (an idle worker)."""
        if timeout > 0:
            self.connection.bzpopmin(self.markers, timeout=max(0.001, math.floor(timeout * 1000) / 1000))


class _Direct:
    """One script of the hot path, sent as EVALSHA on a connection of the calling thread's own, straight through
    redis-py's ``Connection`` and hiredis's packer: no pool check-out, no retry wrapper, no per-call bookkeeping.

    A connection error is raised as it comes (the caller decides whether to send again, see the module docstring);
    a server that lost its scripts (a restart) gets the script loaded again and the call sent again.
    """

    def __init__(self, client: redis.Redis, script: Any) -> None:
        self.client = client
        self.script = script
        self.sha = script.sha
        self._local = threading.local()

    def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:  # this thread's own, outside the pool (which the idle wait and the keeper use)
            pool = self.client.connection_pool
            connection = self._local.connection = pool.connection_class(**pool.connection_kwargs)
        packed = hiredis.pack_command(("EVALSHA", self.sha, len(keys), *keys, *args))
        try:
            if connection._sock is None:  # connect() as the pool would: Sentinel's connections find the primary there
                connection.connect()
            connection.send_packed_command([packed])
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            self.client.script_load(self.script.script)
            connection.send_packed_command([packed])
            return connection.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
            raise


def _lose_reply(connection: redis.Redis, call: Any) -> Any:
    """A fault-test hook (``QUEUES_TEST_LOSE_REPLY=take,finish``): the first call of the script runs in Redis, but
    its reply is lost (the socket is closed before it is read), as when a connection drops at the worst moment."""
    lost = False

    def first_reply_lost(keys: list[Any], args: list[Any]) -> Any:
        nonlocal lost
        if lost:
            return call(keys=keys, args=args)
        lost = True
        connection.script_load(call.script.script)
        pool = connection.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("EVALSHA", call.sha, len(keys), *keys, *args)
            time.sleep(0.05)  # the script has run by now; its reply waits in a socket nobody reads
        finally:
            conn.disconnect()
            pool.release(conn)
        logger.warning("fault test: the reply to this %s call was lost", "take" if len(keys) % 10 == 0 else "finish")
        raise redis.ConnectionError("the reply was lost (QUEUES_TEST_LOSE_REPLY)")

    return first_reply_lost


def _no_rq_cleanup(self: Any, *args: Any, **kwargs: Any) -> None:
    """RQ's ``StartedJobRegistry.cleanup``, replaced: stalled jobs are this app's to recover (``stalled.lua``)."""


def disable_rq_started_cleanup() -> None:
    """Stop RQ from failing "abandoned" jobs behind this app's back.

    RQ runs ``StartedJobRegistry.cleanup`` whenever anything counts or lists the registry (``rq info``, django-rq's
    pages): it fails or retries every entry whose score has passed, spending an attempt with ``AbandonedJobError``.
    Here an entry's score is its lock's expiry, and a job whose lock ran out has stalled: the workers' stalled
    check puts it back to waiting without spending an attempt (BullMQ's meaning). Called from ``ready()``.
    """
    from rq.registry import StartedJobRegistry

    StartedJobRegistry.cleanup = _no_rq_cleanup  # type: ignore[method-assign]
