"""The worker class that django-rq's ``rqworker`` and ``rqworker-pool`` run (``RQ["WORKER_CLASS"]``).

Whatever it is handed, it works with this app's queue and job classes, the JSON serializer and this
app's Redis client (which waits for Redis to come back instead of failing). It takes jobs with
``RQQueue.dequeue_any``: no-priority jobs first, then by priority, promoting delayed jobs and retries
whose time has come in the same atomic step, so it needs no separate scheduler process (RQ's
``--with-scheduler`` is accepted and has nothing left to do). Paused queues are skipped and each queue's
``limiter`` is honoured in that same step, by every worker together.

- A job that raises ``queues.UnrecoverableError``, or an error its queue lists in ``permanent_errors``,
  fails at once.
- Stalled jobs (their worker died) are found and put back to waiting: see ``queues.stalled``.
- SIGTERM or SIGINT: take no new job; the running one may finish for ``QUEUES_SHUTDOWN_GRACE`` seconds
  (default 30), after which it is stopped and put back to waiting, not failed; then exit 0.
- A queue whose ``concurrency`` is above 1 makes ``rqworker`` a supervisor of that many worker processes
  for it (see ``queues.pool``).
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

import rq
from django.db import connections
from django.utils.module_loading import import_string
from rq.serializers import JSONSerializer
from rq.timeouts import UnixSignalDeathPenalty

from .conf import get_config
from .connection import WORKER, get_connection
from .exceptions import UnrecoverableError
from .job import Job, RQJob, send
from .queue import RQQueue, get_definition
from .signals import job_active, job_completed, job_failed, job_retrying
from .stalled import recover_stalled

logger = logging.getLogger("queues.worker")
jobs_logger = logging.getLogger("queues.jobs")
PR_SET_PDEATHSIG = 1


@cache
def _permanent_errors(queue: str, paths: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    return tuple(import_string(path) for path in paths)


def permanent_errors(queue: str) -> tuple[type[BaseException], ...]:
    """The exception classes that fail a job of ``queue`` at once (``QUEUES[queue]["permanent_errors"]``)."""
    definition = get_config().queues.get(queue)
    return _permanent_errors(queue, definition.permanent_errors) if definition else ()


def _queue_names(queues: Any) -> list[str]:
    items = [queues] if isinstance(queues, str | rq.Queue) else list(queues)
    return [item if isinstance(item, str) else item.name for item in items]


class WorkerMixin:
    """What every worker class of this app adds to RQ's: see the module docstring."""

    queue_class = RQQueue
    job_class = RQJob
    pooled = False  # set in the processes a concurrency supervisor starts

    def __init__(self, queues: str | rq.Queue | Sequence[str | rq.Queue], *args: Any, **kwargs: Any) -> None:
        names = _queue_names(queues)
        definitions = [get_definition(name) for name in names]  # InvalidQueue names the queue and the fix
        connection = get_connection(WORKER)
        # Heartbeats every third of the shortest stalled_interval, valid for two thirds: a dead worker's job is
        # found stalled within one interval (two thirds to run out, a third until the next check).
        self.stalled_interval = min(definition.stalled_interval for definition in definitions)
        kwargs.setdefault("job_monitoring_interval", max(1, math.floor(self.stalled_interval / 3)))
        kwargs.update(connection=connection, serializer=JSONSerializer, queue_class=RQQueue, job_class=RQJob)
        queue_objects = [RQQueue(name, connection=connection) for name in names]
        super().__init__(queue_objects, *args, **kwargs)  # type: ignore[call-arg]
        self._definitions = definitions
        self._next_stall_check = 0.0
        self._stop_requested_at: float | None = None
        self._requeue_job_id: str | None = None

    # --- the loop -------------------------------------------------------------------------------

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # Delayed jobs and retries are promoted by dequeue_any itself, to the millisecond; RQ's scheduler
        # (whole seconds, polling once a second) would only race it.
        kwargs["with_scheduler"] = False
        if self._supervises():
            from .pool import supervise

            return supervise(type(self), self._definitions, burst=kwargs.get("burst", False),
                             max_jobs=kwargs.get("max_jobs"), logging_level=kwargs.get("logging_level"))
        return super().work(*args, **kwargs)  # type: ignore[misc]

    def _supervises(self) -> bool:
        """Whether this worker should run a pool (some queue wants concurrency, and we are not in a pool)."""
        in_a_pool = self.pooled or multiprocessing.parent_process() is not None
        return not in_a_pool and any(definition.concurrency > 1 for definition in self._definitions)

    @property
    def dequeue_timeout(self) -> int:
        # Wake at least every stall check period, even when idle (RQ blocks for up to worker_ttl - 15 s).
        return max(1, min(super().dequeue_timeout, math.floor(self.stalled_interval / 3)))  # type: ignore[misc]

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)  # type: ignore[misc]
        if pipeline is None:
            self._check_stalled()

    def maintain_heartbeats(self, job: RQJob, execution: Any) -> None:
        super().maintain_heartbeats(job, execution)  # type: ignore[misc]
        self._check_stalled()
        grace = get_config().shutdown_grace
        if (self._stop_requested_at is not None and grace is not None and self._requeue_job_id is None
                and time.monotonic() - self._stop_requested_at >= grace):
            logger.warning("job id=%s name=%s queue=%s still running %.0f s after the stop request: stopping it "
                           "and putting it back to waiting", job.id, job.description, job.origin, grace)
            self._requeue_job_id = job.id
            self.kill_horse()  # type: ignore[attr-defined]

    def _check_stalled(self) -> None:
        if getattr(self, "_is_horse", False) or time.monotonic() < self._next_stall_check:
            return
        period = self.stalled_interval / 3
        self._next_stall_check = time.monotonic() + period
        for queue, definition in zip(self.queues, self._definitions, strict=True):  # type: ignore[attr-defined]
            try:
                recover_stalled(queue, max_stalled_count=definition.max_stalled_count, lock_for=period,
                                owner=self.name)  # type: ignore[attr-defined]
            except Exception:  # a failed check is retried at the next period; never stop the worker for it
                logger.exception("stalled-job check failed on queue %s", queue.name)

    def prepare_job_execution(self, job: RQJob, remove_from_intermediate_queue: bool = False) -> None:  # noqa: FBT001,FBT002
        super().prepare_job_execution(job, remove_from_intermediate_queue)  # type: ignore[misc]
        if job.limiter_entry is not None:
            # The limiter counted this job from the moment it was taken; the limit is about starts, and a fork
            # later, on a loaded host, the start can come tens of milliseconds after the take: enough for 11
            # starts within a second under a limit of 10. Count it from now instead (later, so never more lenient).
            key, member, window = job.limiter_entry
            with self.connection.pipeline() as pipe:  # type: ignore[attr-defined]
                pipe.zadd(key, {member: time.time()})
                pipe.pexpire(key, math.ceil(window * 1000) + 1000)
                pipe.execute()
        handle = Job(job)
        attempts_made = handle.attempts_made
        jobs_logger.info("job active id=%s name=%s queue=%s attempt=%d", job.id, handle.name, job.origin,
                         attempts_made + 1)
        send(job_active, handle, attempts_made=attempts_made)

    # --- a run ends (the `active` event is published by the dequeue script) ---------------------------

    def handle_job_success(self, job: RQJob, queue: RQQueue, started_job_registry: Any, execution: Any) -> None:
        job.completing = True  # cleanup_execution adds the `completed` metric and event to RQ's pipeline
        super().handle_job_success(job, queue, started_job_registry, execution)  # type: ignore[misc]
        handle = Job(job)
        jobs_logger.info("job completed id=%s name=%s queue=%s attempt=%d", job.id, handle.name, job.origin,
                         handle.attempts_made)
        send(job_completed, handle, return_value=job._result)

    def cleanup_execution(self, job: RQJob, pipeline: Any, execution: Any = None) -> None:
        super().cleanup_execution(job, pipeline=pipeline, execution=execution)  # type: ignore[misc]
        # In a success, RQ calls this last in the pipeline that records it: after the finished registry entry
        # is written, so the retention trim counts it. (A failure records its own, in RQJob._handle_failure.)
        if job.completing:
            job.record_completed(pipeline, job.get_result_ttl(self.default_result_ttl))  # type: ignore[attr-defined]

    # --- stopping -------------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: Any) -> None:
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
            self.job_monitoring_interval = 1  # look at the grace every second from now on
        super().request_stop(signum, frame)  # type: ignore[misc]

    def handle_job_failure(self, job: RQJob, queue: RQQueue, started_job_registry: Any = None, exc_string: str = "",
                           execution: Any = None) -> None:
        if self._requeue_job_id == job.id:  # stopped at the end of the shutdown grace: back to waiting, not failed
            self._requeue_job_id = None
            with self.connection.pipeline() as pipe:  # type: ignore[attr-defined]
                self.cleanup_execution(job, pipeline=pipe, execution=execution)
                queue.requeue(job, pipe)
                pipe.execute()
            jobs_logger.warning("job requeued id=%s name=%s queue=%s: stopped at the end of the shutdown grace",
                                job.id, job.description, job.origin)
            return
        retrying = job.should_retry and self._stopped_job_id != job.id  # type: ignore[attr-defined]
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)  # type: ignore[misc]
        handle = Job(job)
        attempts_made = handle.attempts_made  # the run that just failed included
        reason = job.failed_reason(exc_string)
        if retrying:
            jobs_logger.warning("job retrying id=%s name=%s queue=%s attempt=%d error=%s: retry in %.3f s", job.id,
                                handle.name, job.origin, attempts_made, reason, job.retry_wait)
            send(job_retrying, handle, error=job.last_error, attempts_made=attempts_made)
        else:
            jobs_logger.error("job failed id=%s name=%s queue=%s attempt=%d error=%s", job.id, handle.name,
                              job.origin, attempts_made, reason)
            send(job_failed, handle, error=job.last_error, attempts_made=attempts_made)

    def _finalize_failure(self, job: RQJob, queue: rq.Queue, execution: Any, exc_info: Any) -> None:
        error = exc_info[1]
        job.last_error = error
        if isinstance(error, UnrecoverableError) or isinstance(error, permanent_errors(job.origin)):
            job.fail_now = True
        super()._finalize_failure(job, queue, execution, exc_info)  # type: ignore[misc]


class Worker(WorkerMixin, rq.Worker):
    """RQ's forking worker (a fresh process per job), JSON only, on this app's queues."""

    def get_heartbeat_ttl(self, job: RQJob, working_time: float = 0.0) -> int:
        # The worker heart-beats while its job process runs, so the entry can run out soon after it stops.
        # (SimpleWorker keeps RQ's rule: it cannot heart-beat during a job, so its entries last the job's timeout.)
        return max(2, math.ceil(self.stalled_interval * 2 / 3))

    def request_stop(self, signum: int, frame: Any) -> None:
        super().request_stop(signum, frame)
        # The worker waits for its job process under an alarm of job_monitoring_interval seconds (up to 10 with the
        # default stalled_interval of 30): the shorter interval set on the stop request only applied to the next
        # wait, so the grace was overrun by up to that much. Bring the pending alarm forward to within a second.
        # (Only the forking worker: there the alarm is the monitor's, never a job's timeout.)
        if self.horse_pid and self.death_penalty_class is UnixSignalDeathPenalty:
            pending = signal.alarm(0)
            if pending:
                signal.alarm(min(pending, 1))

    def fork_work_horse(self, job: RQJob, queue: RQQueue) -> None:
        connections.close_all()  # never share a database socket with the job process
        super().fork_work_horse(job, queue)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        if sys.platform.startswith("linux"):  # the job process dies with its worker: never two live runs
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != self.pid:  # the worker died between the fork and the line above
                os._exit(1)


class SimpleWorker(WorkerMixin, rq.SimpleWorker):
    """The same, running jobs in the worker process itself (no fork): for tests and I/O-bound jobs."""
