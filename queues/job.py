"""Jobs: the RQ job class with the allow-list a worker enforces, and BullMQ's job handle.

``RQJob`` is what django-rq and this app's worker load from Redis (``RQ["JOB_CLASS"]``). ``Job`` is
what ``Queue.add()`` and ``current_job()`` return: BullMQ's vocabulary over the RQ job. (RQ's own
``Job.data`` is the serialized call, so the handle cannot simply be a subclass.)
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rq.job import Job as BaseRQJob
from rq.job import JobStatus, get_current_job
from rq.serializers import JSONSerializer

from .events import publish
from .exceptions import InvalidJobData, JobRefused
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
    b"meta",
})
_templates: dict[int, dict[str, Any]] = {}


class RQJob(BaseRQJob):
    """RQ's job, refusing to call anything but a registered ``@job`` function (``RQ["JOB_CLASS"]``).

    It also carries this app's options in its hash: ``priority``, the retention counts
    (``keep_completed`` / ``keep_failed``) and the ``backoff`` spec, which the worker and the scripts read.
    """

    priority: int | None = None
    keep_completed: str = ""
    keep_failed: str = ""
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
        one per run from the hash the take returned. A hash with a field this app never writes gets RQ's restore.
        """
        if not fields.keys() <= _OWN_FIELDS or b"data" not in fields:
            job = cls(id=job_id, connection=connection, serializer=JSONSerializer)
            job.restore(fields)
            return job
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
        job.meta = json.loads(get(b"meta")) if get(b"meta") else {}
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
        job.retry_intervals = json.loads(intervals) if intervals else None
        for field in ("success_callback_name", "failure_callback_name", "stopped_callback_name"):
            value = get(field.encode())
            setattr(job, f"_{field}", value.decode() if value else None)
        for field in ("keep_completed", "keep_failed", "backoff"):
            value = get(field.encode())
            setattr(job, field, value.decode() if value else "")
        return job

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict[str, Any]:  # noqa: FBT001,FBT002
        data = super().to_dict(include_meta=include_meta, include_result=include_result)
        for field in ("priority", "keep_completed", "keep_failed", "backoff"):
            value = getattr(self, field)
            if value:
                data[field] = value
        return data

    def restore(self, raw_data: Any) -> Any:
        result = super().restore(raw_data)
        get = raw_data.get
        priority = get(b"priority") or get("priority")
        self.priority = int(priority) if priority else None
        for field in ("keep_completed", "keep_failed", "backoff"):
            value = get(field.encode()) or get(field)
            setattr(self, field, value.decode() if isinstance(value, bytes) else (value or ""))
        return result

    @property
    def func(self) -> Callable[..., Any] | None:
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
        """The ``@job`` function's dotted path, or the ``name=`` it was registered with."""
        return self.rq_job.description or self.rq_job.func_name or ""

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
