"""Jobs: the RQ job class with the allow-list a worker enforces, and BullMQ's job handle.

``RQJob`` is what django-rq and this app's worker load from Redis (``RQ["JOB_CLASS"]``). ``Job`` is
what ``Queue.add()`` and ``current_job()`` return: BullMQ's vocabulary over the RQ job. (RQ's own
``Job.data`` is the serialized call, so the handle cannot simply be a subclass.)
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from rq.exceptions import DeserializationError
from rq.job import Job as BaseRQJob
from rq.job import JobStatus, get_current_job
from rq.serializers import JSONSerializer
from rq.utils import as_text, str_to_date

from .events import publish
from .exceptions import InvalidJobData, JobRefused
from .options import Backoff
from .payload import check_payload
from .registry import definition_for_path

logger = logging.getLogger("queues.jobs")
PROGRESS_MAX_BYTES = 1024
EVENT_RETURN_VALUE_MAX_BYTES = 16 * 1024  # a larger return value is left out of the `completed` event
FAILED_REASON_MAX_CHARS = 1000
ENDED = frozenset({"finished", "failed", "stopped", "canceled"})  # RQ statuses after the last run
# RQ status → BullMQ state (Job.getState()).
STATES = {
    "created": "waiting",
    "queued": "waiting",
    "started": "active",
    "finished": "completed",
    "failed": "failed",
    "stopped": "failed",
    "canceled": "failed",
    "scheduled": "delayed",
    "deferred": "waiting-children",
}


class _Time:
    """A job's timestamp, parsed from its RQ text only when read: building a job to run it parses none of them."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = f"_time_{name}"

    def __get__(self, job: Any, owner: type | None = None) -> Any:
        if job is None:
            return self
        value = job.__dict__.get(self.key)
        if isinstance(value, bytes):
            value = job.__dict__[self.key] = _parse_time(value)
        return value

    def __set__(self, job: Any, value: Any) -> None:
        job.__dict__[self.key] = value


def rq_time(at: float) -> str:
    """RQ's time text (``rq.utils.utcformat``) for the POSIX time ``at``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(raw: bytes) -> datetime | None:
    """RQ's time text (``utcformat``) as an aware datetime, the way ``rq.utils.str_to_date`` reads it."""
    if not raw:
        return None
    text = raw.decode()
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) if "." in text else \
            datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


# The hash fields this app writes and reads itself; a job whose hash has any other goes through RQ's full restore.
_OWN_FIELDS = frozenset({
    b"created_at", b"data", b"description", b"ended_at", b"enqueued_at", b"failure_callback_name", b"failure_ttl",
    b"group_id", b"last_heartbeat", b"origin", b"result_ttl", b"started_at", b"status", b"stopped_callback_name",
    b"success_callback_name", b"timeout", b"worker_name", b"retries_left", b"retry_intervals", b"keep_completed",
    b"keep_failed", b"priority", b"backoff", b"number_of_retries", b"stalled_count", b"exc_info", b"progress",
    b"meta", b"otel",
})
_templates: dict[int, dict[str, Any]] = {}


def _intervals(raw: bytes | str) -> list[float]:
    value = json.loads(raw)
    try:
        if type(value) is not list:
            raise TypeError
        sum(value)  # numbers only (the cheapest check: this runs for every job the worker takes)
    except TypeError:
        raise ValueError("not a list of numbers") from None
    return value


def _backoff(raw: bytes | str) -> str:
    text = as_text(raw)
    Backoff.from_spec(text)
    return text


_TIMES = ("created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat")
# How RQ's restore (and this app's) reads each field. A value it cannot read raises there, halfway through; a hash
# written by another version or by hand is checked against these first instead (see RQJob.restore).
_FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(("timeout", "result_ttl", "failure_ttl", "retries_left", "number_of_retries", "priority", "ttl",
                     "repeats_left", "rate_limit_concurrency", "success_callback_timeout", "failure_callback_timeout",
                     "stopped_callback_timeout", "allow_dependency_failures", "enqueue_at_front",
                     "enqueue_at_front_on_retry"), int),
    **dict.fromkeys(("retry_intervals", "repeat_intervals"), _intervals),
    **dict.fromkeys(("origin", "description", "worker_name", "group_id", "success_callback_name",
                     "failure_callback_name", "stopped_callback_name", "keep_completed", "keep_failed",
                     "dependency_id", "rate_limit_key"), as_text),
    **dict.fromkeys(_TIMES, str_to_date),
    "dependency_ids": json.loads,
    "status": lambda raw: JobStatus(as_text(raw)),
    "backoff": _backoff,
}


def _shown(value: Any) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return repr(text if len(text) <= 60 else text[:60] + "…")


def _checked(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The job hash ``raw`` without the values RQ's restore could not read, and what is wrong with each.

    An empty value reads as unset, as RQ reads it; an unreadable time is left out without a complaint (the fast
    path of ``from_hash`` reads it as unset too). A hash without ``data`` gets an empty one, which reads as no call.
    """
    fields: dict[str, Any] = {}
    malformed = []
    for key, value in raw.items():
        name = as_text(key)
        check = _FIELD_CHECKS.get(name)
        if check is not None:
            if not value:
                continue
            try:
                check(value)
            except (ValueError, TypeError, AssertionError) as e:
                if name not in _TIMES:
                    malformed.append(f"{name}={_shown(value)} ({e})")
                continue
        fields[name] = value
    if not fields.get("data"):
        malformed.append("no 'data' (the function to call and its arguments)")
        fields["data"] = b""
    return fields, tuple(malformed)


class RQJob(BaseRQJob):
    """RQ's job, refusing to call anything but a registered ``@job`` function (``RQ["JOB_CLASS"]``).

    It also carries this app's options in its hash: ``priority``, the retention counts
    (``keep_completed`` / ``keep_failed``) and the ``backoff`` spec, which the worker and the scripts read.
    """

    priority: int | None = None
    malformed: tuple[str, ...] = ()  # what cannot be read in its hash (RQJob.restore): the worker refuses the job
    keep_completed: str = ""
    keep_failed: str = ""

    # The same job whatever class read it: django-rq's pages fetch jobs with RQ's own Job, and RQ's equality
    # (``isinstance(other, self.__class__)``) made a Job and an RQJob of one id differ.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseRQJob) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)
    backoff: str = ""
    created_at = _Time()
    enqueued_at = _Time()
    started_at = _Time()
    ended_at = _Time()
    last_heartbeat = _Time()

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[bytes, bytes], connection: Any) -> RQJob:
        """The job its hash describes, as ``fetch`` would build it, without a round trip and without the costly
        parts of RQ's ``__init__`` and ``restore`` (a serializer check, four timestamps parsed): the worker builds
        one per run from the hash the take returned. A hash with a field this app never writes, or a value it
        never writes (not a number, not JSON, …), gets RQ's restore, which never raises (see :meth:`restore`).
        """
        if not fields.keys() <= _OWN_FIELDS or b"data" not in fields:
            return cls._restored(job_id, fields, connection)
        try:
            return cls._from_own_hash(job_id, fields, connection)
        except (ValueError, TypeError):  # UnicodeDecodeError and JSONDecodeError too
            return cls._restored(job_id, fields, connection)

    @classmethod
    def _restored(cls, job_id: str, fields: dict[bytes, bytes], connection: Any) -> RQJob:
        job = cls(id=job_id, connection=connection, serializer=JSONSerializer)
        job.restore(fields)
        return job

    @classmethod
    def _from_own_hash(cls, job_id: str, fields: dict[bytes, bytes], connection: Any) -> RQJob:
        template = _templates.get(id(connection))
        if template is None or template["connection"] is not connection:
            template = _templates[id(connection)] = dict(cls(connection=connection, serializer=JSONSerializer).__dict__)
        job = cls.__new__(cls)
        job.__dict__.update(template)
        get = fields.get
        raw = fields[b"data"]
        try:
            job._data = zlib.decompress(raw)
        except zlib.error:
            job._data = raw
        job._id = job_id
        meta = get(b"meta")
        job.meta = json.loads(meta) if meta else {}
        job.webhooks = []
        job._dependency_ids = []
        for name in ("created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat"):
            job.__dict__[f"_time_{name}"] = get(name.encode(), b"")
        job.origin = (get(b"origin") or b"").decode()
        job.description = (get(b"description") or b"").decode() or None
        job.worker_name = (get(b"worker_name") or b"").decode() or None
        job._status = JobStatus((get(b"status") or b"created").decode())
        for field in ("timeout", "result_ttl", "failure_ttl", "retries_left", "number_of_retries", "priority"):
            value = get(field.encode())
            setattr(job, field, int(value) if value else None)
        intervals = get(b"retry_intervals")
        job.retry_intervals = _intervals(intervals) if intervals else None  # type: ignore[assignment]  # RQ types them int
        for field in ("success_callback_name", "failure_callback_name", "stopped_callback_name"):
            value = get(field.encode())
            setattr(job, f"_{field}", value.decode() if value else None)
        for field in ("keep_completed", "keep_failed", "backoff"):
            value = get(field.encode())
            setattr(job, field, value.decode() if value else "")
        if job.backoff:
            Backoff.from_spec(job.backoff)
        return job

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict[str, Any]:  # noqa: FBT001,FBT002
        data = super().to_dict(include_meta=include_meta, include_result=include_result)
        for field in ("priority", "keep_completed", "keep_failed", "backoff"):
            value = getattr(self, field)
            if value:
                data[field] = value
        return data

    def restore(self, raw_data: Any) -> Any:
        """RQ's restore, which never raises: a value it could not read is left out and named in ``malformed``
        (a hash with no ``data`` too), so the job can still be listed, and is refused by a worker."""
        fields, self.malformed = _checked(raw_data)
        result = super().restore(fields)
        get = fields.get
        priority = get("priority")
        self.priority = int(priority) if priority else None
        for field in ("keep_completed", "keep_failed", "backoff"):
            value = get(field)
            setattr(self, field, as_text(value) if value else "")
        return result

    def check_readable(self) -> None:
        """Refuse a job whose hash this app cannot have written: checked before its function is looked up.

        Raises:
            JobRefused: a field of its hash cannot be read (``malformed``), or its data is not a call written in
                JSON (a pickle, say, which is never loaded).
        """
        if self.malformed:
            raise JobRefused(f"Job {self.id} has fields this app cannot read: {'; '.join(self.malformed)}: refused. "
                             "Queue.add never writes these; the job was written by another version or by hand.")
        try:
            self.func_name  # noqa: B018 - reads the data
        except DeserializationError as e:
            cause = e.__cause__ or e
            raise JobRefused(f"Job {self.id} has data that is not a call written in JSON ({type(cause).__name__}: "
                             f"{cause}): refused. Only jobs added with Queue.add run; pickle is never loaded.") from e

    @property
    def func(self) -> Callable[..., Any] | None:
        self.check_readable()
        path = self.func_name
        if path is None:
            return None
        if self.instance is not None or definition_for_path(path) is None:
            raise JobRefused(
                f"Job {self.id} names {path!r}, which is not a registered @job function: refused. Only functions "
                "decorated with @job in an app's jobs.py run (check that the worker runs the same code)."
            )
        # Refuse a job carrying a callback before its function runs, not after: refused afterwards, it
        # would count as failed (and be retried) with its side effects already done.
        self._refuse_callback("success", self._success_callback_name)
        self._refuse_callback("failure", self._failure_callback_name)
        self._refuse_callback("stopped", self._stopped_callback_name)
        return super().func

    # Callbacks are names read from Redis and imported by RQ: this app does not use them, so a job that
    # carries one was not written by it and is refused rather than letting Redis name what gets called.
    def _refuse_callback(self, kind: str, name: str | None) -> None:
        if name:
            raise JobRefused(f"Job {self.id} carries an RQ {kind} callback {name!r}: refused.")

    @property
    def success_callback(self) -> Any:
        self._refuse_callback("success", self._success_callback_name)
        return None

    @property
    def failure_callback(self) -> Any:
        self._refuse_callback("failure", self._failure_callback_name)
        return None

    @property
    def stopped_callback(self) -> Any:
        self._refuse_callback("stopped", self._stopped_callback_name)
        return None


class Job:
    """A job, as BullMQ's ``Job``: ``id``, ``name``, ``data``, ``attempts_made``, ``get_state()``.

    Everything else RQ's job offers (``return_value()``, ``exc_info``, ``meta``, …) is reached through
    it too, or directly as ``job.rq_job``.
    """

    __slots__ = ("_rq_job", "_hash")

    def __init__(self, rq_job: BaseRQJob | None = None, *,
                 new: tuple[str, dict[bytes, bytes], Any] | None = None) -> None:
        self._rq_job = rq_job
        self._hash = new  # (id, hash fields, connection) of a job just added: built into an RQ job on first use

    @property
    def rq_job(self) -> BaseRQJob:
        if self._rq_job is None:
            assert self._hash is not None
            self._rq_job = RQJob.from_hash(*self._hash)
        return self._rq_job

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name!r} on {self.queue_name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.rq_job, attr)

    @property
    def id(self) -> str:
        return self._hash[0] if self._rq_job is None and self._hash is not None else self.rq_job.id

    @property
    def name(self) -> str:
        """The ``@job`` function's dotted path, or the ``name=`` it was registered with ("" when unreadable)."""
        try:
            return self.rq_job.description or self.rq_job.func_name or ""
        except DeserializationError:  # data not written by this app (RQJob.check_readable names the fault)
            return ""

    @property
    def data(self) -> dict[str, Any]:
        """The data the job was added with (its keyword arguments)."""
        return dict(self.rq_job.kwargs)

    @property
    def queue_name(self) -> str:
        return self.rq_job.origin

    @property
    def attempts_made(self) -> int:
        """Runs made, as BullMQ's ``attemptsMade``: while waiting or running, the runs that failed before (0
        during the first run); once completed or failed, every run including the last.

        RQ counts a retry after an exception only by decrementing ``retries_left`` (its
        ``number_of_retries`` counts only jobs that return ``rq.Retry``). ``add()`` passes one interval
        per retry (``options.JobOptions.rq_kwargs``), so the intervals' count is the retries allowed,
        and RQ picks each retry's interval by the same difference.
        """
        rq_job = self.rq_job
        made = rq_job.number_of_retries or 0
        intervals = rq_job.retry_intervals
        if rq_job.retries_left is not None and isinstance(intervals, list):
            made += max(len(intervals) - rq_job.retries_left, 0)
        return made + (1 if rq_job.get_status(refresh=False) in ENDED else 0)

    @property
    def progress(self) -> Any:
        """The job's last reported progress (a number or a small JSON object), or 0."""
        raw = self.rq_job.connection.hget(self.rq_job.key, "progress")
        return json.loads(raw) if raw else 0

    def update_progress(self, value: float | dict[str, Any]) -> None:
        """Report progress from inside the job: a number from 0 to 100, or a small JSON object.

        Stored on the job (``progress``) and published as a ``progress`` event on the queue's stream, in one
        round trip.

        Raises:
            InvalidJobData: not a number in 0–100 nor a dict of JSON values under 1 KiB.
        """
        if isinstance(value, bool) or not (isinstance(value, int | float) and 0 <= value <= 100
                                           or isinstance(value, dict)):
            raise InvalidJobData(f"progress must be a number from 0 to 100 or a small dict, not {value!r}.")
        if isinstance(value, dict):
            check_payload(value, PROGRESS_MAX_BYTES)
        encoded = json.dumps(value, separators=(",", ":"))
        pipe = self.rq_job.connection.pipeline()
        pipe.hset(self.rq_job.key, "progress", encoded)
        publish(pipe, self.queue_name, "progress", job_id=self.id, data=encoded)
        pipe.execute()
        from .signals import job_progress

        send(job_progress, self, progress=value)

    def get_state(self) -> str:
        """BullMQ's state: waiting, prioritized, delayed, active, completed, failed, or unknown (gone)."""
        status, priority = self.rq_job.connection.hmget(self.rq_job.key, "status", "priority")
        if status is None:  # the job's hash is gone (removed, or its retention expired)
            return "unknown"
        state = STATES.get(status.decode(), "unknown")
        return "prioritized" if state == "waiting" and priority and int(priority) > 0 else state

    def retry(self) -> bool:
        """Move this failed (or completed) job back to waiting, or prioritized, with its attempts reset.

        Publishes ``waiting``. Returns False when the job is not failed or completed (waiting, active, gone).
        """
        from .maintenance import retry_job

        return retry_job(self.rq_job.connection, self.queue_name, self.id)

    def remove(self) -> bool:
        """Remove this job and everything it left in Redis; publish ``removed``. False when it was gone already.

        Raises:
            QueueBusy: the job is running; remove it once it has ended.
        """
        from .maintenance import remove_job

        return remove_job(self.rq_job.connection, self.queue_name, self.id)


def current_job() -> Job | None:
    """The job running in this process (its id, name, data, attempts_made), or None outside a job."""
    job = get_current_job()
    return None if job is None else Job(job)


def send(signal: Any, job: Job, **kwargs: Any) -> None:
    """Send a lifecycle signal (sender: the queue's name); a receiver that raises is logged, never raised."""
    if not signal.receivers:
        return
    for receiver, result in signal.send_robust(sender=job.queue_name, job=job, **kwargs):
        if isinstance(result, Exception):
            logger.error("queues signal receiver %r failed for job id=%s queue=%s: %r", receiver, job.id,
                         job.queue_name, result, exc_info=result)
