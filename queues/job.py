"""Jobs: the RQ job class with the allow-list a worker enforces, and BullMQ's job handle.

``RQJob`` is what django-rq and this app's worker load from Redis (``RQ["JOB_CLASS"]``). ``Job`` is
what ``Queue.add()`` and ``current_job()`` return: BullMQ's vocabulary over the RQ job. (RQ's own
``Job.data`` is the serialized call, so the handle cannot simply be a subclass.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq.exceptions import InvalidJobOperation
from rq.job import Job as BaseRQJob
from rq.job import get_current_job

from .exceptions import JobRefused
from .registry import definition_for_path

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


class RQJob(BaseRQJob):
    """RQ's job, refusing to call anything but a registered ``@job`` function (``RQ["JOB_CLASS"]``)."""

    refused = False  # set when the job is refused: a refused job is failed at once, never retried

    @property
    def should_retry(self) -> bool:
        return not self.refused and super().should_retry

    @property
    def func(self) -> Callable[..., Any] | None:
        path = self.func_name
        if path is None:
            return None
        if self.instance is not None or definition_for_path(path) is None:
            self.refused = True
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
            self.refused = True
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

    __slots__ = ("rq_job",)

    def __init__(self, rq_job: BaseRQJob) -> None:
        self.rq_job = rq_job

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
        return self.rq_job.id

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
        """Runs that failed before this one (0 during the first run), as BullMQ's ``attemptsMade``.

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
        return made

    def get_state(self) -> str:
        """BullMQ's state: waiting, active, delayed, completed, failed, or unknown (the job is gone)."""
        try:
            status = self.rq_job.get_status(refresh=True)
        except InvalidJobOperation:  # the job's hash is gone (removed, or its retention expired)
            return "unknown"
        return STATES.get(status.value, "unknown")


def current_job() -> Job | None:
    """The job running in this process (its id, name, data, attempts_made), or None outside a job."""
    job = get_current_job()
    return None if job is None else Job(job)
