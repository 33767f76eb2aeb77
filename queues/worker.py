"""The worker that django-rq's ``rqworker`` and ``rqworker-pool`` run (``RQ["WORKER_CLASS"]``).

It subclasses RQ's worker so that django-rq builds it and RQ's tools list it (``rq info``, django-rq's pages), but
the loop is this app's own (``queues.lifecycle``): take a job under a lock, run it, record the outcome under the
lock and take the next job in the same round trip. Per queue (``QUEUES[name]["mode"]``):

- ``"processes"`` (default): ``rqworker`` supervises ``concurrency`` long-lived worker processes for the queue,
  each running jobs in-process, one at a time. A process that dies is replaced; its job is recovered as stalled.
  ``max_jobs_per_process`` / ``max_memory_per_process`` (MiB) recycle a process after its current job.
- ``"threads"``: one worker process runs up to ``concurrency`` jobs at once in threads (I/O-bound jobs). A job past
  its timeout is failed and its thread's eventual result ignored (a thread cannot be stopped).
- ``"fork"``: RQ's way, a fresh process per job, for jobs that must start from a clean process.

Everything else is the same in every mode: delayed jobs and retries promoted by the take itself (no scheduler
process), pause, the limiter, stalled-job recovery, events, signals, progress, retention, and on SIGTERM: no new
job, the running one may finish for ``QUEUES_SHUTDOWN_GRACE`` seconds, then it is stopped and put back to waiting
(attempts untouched), and the worker exits 0.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import redis
import rq
from django.db import close_old_connections, connections
from django.utils.module_loading import import_string
from rq import worker_registration
from rq.exceptions import NoSuchJobError
from rq.job import _current_job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from . import lifecycle, schedulers, spool, tracing
from .conf import get_config, get_definition
from .connection import WORKER, build_client, get_connection
from .exceptions import JobRefused, UnrecoverableError
from .job import Job, RQJob, rq_time, send
from .lifecycle import REQUEUE, Lifecycle, Outcome, Taken
from .options import Backoff
from .pool import RECYCLE_EXIT
from .queue import BLOCK_TIMEOUT_SLACK, Queue
from .registry import definition_for_path
from .rqqueue import RQQueue
from .scripts import QueueKeys
from .signals import job_active, job_completed, job_failed, job_retrying, job_stalled

logger = logging.getLogger("queues.worker")
jobs_logger = logging.getLogger("queues.jobs")
PR_SET_PDEATHSIG = 1
SIGNAL_DEBOUNCE = 0.5  # seconds within which a second stop signal is the same request, not "stop now"
IDLE_BLOCK = 1.0  # seconds an idle worker blocks at most before it looks at its stop flag again


class GraceExpired(BaseException):  # noqa: N818 - raised into a job, like KeyboardInterrupt
    """The shutdown grace ran out while the job ran: it goes back to waiting."""


class Stopped(Exception):  # noqa: N818
    """The worker was asked to stop while Redis could not be reached."""


@cache
def _permanent_errors(paths: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    return tuple(import_string(path) for path in paths)


def permanent_errors(queue: str) -> tuple[type[BaseException], ...]:
    """The exception classes that fail a job of ``queue`` at once (``QUEUES[queue]["permanent_errors"]``)."""
    definition = get_config().queues.get(queue)
    return _permanent_errors(definition.permanent_errors) if definition else ()


@cache
def _function(path: str) -> Callable[..., Any]:
    return import_string(path)


def job_function(job: RQJob) -> Callable[..., Any]:
    """The ``@job`` function a job names (imported once per process).

    Raises:
        JobRefused: it names no registered ``@job`` function, or carries an RQ callback (never imported), or its hash
            cannot be read (a field that is not what this app writes; data that is not a call in JSON).
    """
    job.check_readable()
    path = job.func_name
    if job.instance is not None or path is None or definition_for_path(path) is None:
        raise JobRefused(f"Job {job.id} names {path!r}, which is not a registered @job function: refused. Only "
                         "functions decorated with @job in an app's jobs.py run (check that the worker runs the "
                         "same code).")
    for kind, name in (("success", job._success_callback_name), ("failure", job._failure_callback_name),
                       ("stopped", job._stopped_callback_name)):
        if name:
            raise JobRefused(f"Job {job.id} carries an RQ {kind} callback {name!r}: refused.")
    return _function(path)


def _queue_names(queues: Any) -> list[str]:
    items = [queues] if isinstance(queues, str | rq.Queue) else list(queues)
    return [item if isinstance(item, str) else item.name for item in items]


class Worker(rq.Worker):
    """This app's worker: see the module docstring."""

    in_process = False  # SimpleWorker: run in this process, never as a supervisor
    pooled = False  # set in the processes a supervisor starts

    # The same worker whatever class read it (django-rq's pages list workers with RQ's own class, whose equality
    # raises TypeError for another class).
    def __eq__(self, other: object) -> bool:
        return isinstance(other, rq.worker.BaseWorker) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __init__(self, queues: str | rq.Queue | Sequence[str | rq.Queue], *args: Any, **kwargs: Any) -> None:
        names = _queue_names(queues)
        self._given_name: str | None = kwargs.get("name")
        self._definitions = [get_definition(name) for name in names]  # InvalidQueue names the queue and the fix
        # A worker takes jobs on the client that waits for Redis for ever; a handle RQ builds to list workers
        # (``Worker.all()``: no queues, in a web process) keeps the caller's client, whose calls are bounded.
        given = kwargs.get("connection")
        connection = given if not names and given is not None else get_connection(WORKER)
        kwargs.update(connection=connection, serializer=JSONSerializer, queue_class=RQQueue, job_class=RQJob)
        super().__init__([RQQueue(name, connection=connection) for name in names], *args, **kwargs)
        self._stop_requested_at: float | None = None
        self._stopping = threading.Event()
        self._fork_lock = threading.Lock()  # held by the keeper's steps and across a fork (fork mode)
        self._nudge = threading.Event()  # wakes the keeper early (a stop, a job with a deadline in threads mode)
        self._keeper_wakes_at = 0.0
        self._held: dict[str, Taken] = {}  # lock member -> the job, for every job this process runs
        self._grace_deadline: float | None = None
        self._job_deadline: float | None = None
        self._child_pid = 0
        self._child_requeue = False
        self._lifecycle: Lifecycle | None = None
        self._recycle = False
        self._done = itertools.count(1)
        self._running = False  # a job runs in the main thread (the alarm may interrupt it)
        # Fault tests only: seconds to wait between taking a job and running it (a worker killed in that window).
        self._pause_after_take = float(os.environ.get("QUEUES_TEST_PAUSE_AFTER_TAKE") or 0)
        self._job_timeout: Any = None

    # --- entry ---------------------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._definitions[0].mode if len(self._definitions) == 1 else "processes"

    def work(self, burst: bool = False, logging_level: Any = None,  # type: ignore[override]  # noqa: FBT001,FBT002
             max_jobs: int | None = None, **kwargs: Any) -> bool:
        """Run until stopped (or, with ``burst``, until the queues have nothing due). ``--with-scheduler`` and
        RQ's other loop options are accepted and change nothing: delayed jobs are promoted by the take itself."""
        if not self.pooled:  # once per `rqworker` command, before its processes start
            self._sync_schedulers()
        if self._supervises():
            from .pool import supervise

            return supervise(type(self), self._definitions, burst=burst, max_jobs=max_jobs,
                             logging_level=logging_level, name=self._given_name)
        return self.run(burst=burst, max_jobs=max_jobs)

    def _sync_schedulers(self) -> None:
        """Upsert ``QUEUES_JOB_SCHEDULERS`` (idempotent) and remove those taken out of it; Redis down: later."""
        try:
            schedulers.sync_settings(self.connection)
        except redis.RedisError as e:
            logger.warning("worker %s could not sync %s (%s); the next worker start will", self.name,
                           schedulers.SETTING, e)

    def _supervises(self) -> bool:
        """Whether ``rqworker`` should run a supervisor of worker processes rather than take jobs itself."""
        if self.in_process or self.pooled or multiprocessing.parent_process() is not None:
            return False
        return len(self._definitions) > 1 or any(
            definition.mode != "fork" or definition.concurrency > 1 for definition in self._definitions)

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> bool:
        """Take and run jobs in this process until stopped; return True."""
        names = [queue.name for queue in self.queues]
        # The hot path never re-sends by itself; the pool serves the idle waits (one per thread) and the keeper.
        threads = self._definitions[0].concurrency if self.mode == "threads" else 1
        client = build_client(get_config().redis, retries=0, max_connections=max(100, 2 * threads + 10))
        self._lifecycle = Lifecycle(client, names, self.name)
        main = threading.current_thread() is threading.main_thread()
        if main:
            self._install_signals()
        self._state = "idle"  # what `rq info` shows; the keeper updates it with each heartbeat
        self.register_birth()
        logger.info("worker %s (pid %d, %s mode) taking jobs from %s", self.name, os.getpid(), self.mode,
                    ", ".join(names))
        keeper = threading.Thread(target=self._keep, name="queues-keeper", daemon=True)
        keeper.start()
        try:
            if self.mode == "threads":
                self._run_threads(burst=burst, max_jobs=max_jobs)
            else:
                run = self._run_forked if self.mode == "fork" and not self.in_process else self._run_inline
                self._loop(run, burst=burst, max_jobs=max_jobs)
        except Stopped:
            pass
        finally:
            self._stopping.set()
            self._nudge.set()
            keeper.join(timeout=2)
            self._unregister(client)
            client.close()
        logger.info("worker %s stopped", self.name)
        if self._recycle and self.pooled:
            sys.exit(RECYCLE_EXIT)
        return True

    def _unregister(self, client: redis.Redis) -> None:
        """RQ's ``register_death`` on the client that never retries: a worker stopping while Redis is unreachable
        exits instead of waiting for it for ever."""
        try:
            with client.pipeline() as pipe:
                worker_registration.unregister(self, pipe)
                pipe.hset(self.key, "death", rq_time(time.time()))
                pipe.expire(self.key, 60)
                pipe.execute()
        except redis.RedisError:
            logger.warning("worker %s could not unregister (Redis unreachable); its entry expires by itself", self.name)

    # --- the loop --------------------------------------------------------------------------------------------

    def _loop(self, run: Callable[[Taken], Outcome | None], *, burst: bool, max_jobs: int | None = None) -> None:
        lc = self._lifecycle
        assert lc is not None
        taken: Taken | None = None
        wake: float | None = None
        while True:
            if taken is None:
                if self._stopping.is_set():
                    return
                taken, wake = self._call(lambda token, reclaim: lc.take(token or "", reclaim=reclaim))
                if taken is None:
                    if burst:  # RQ's meaning: until nothing is ready (delayed jobs not yet due stay)
                        return
                    self._idle(wake)
                    continue
            self._held[taken.member] = taken
            if self._pause_after_take:
                self.connection.rpush("queues:test:taken", taken.id)
                time.sleep(self._pause_after_take)
            if b"scheduler" in taken.fields:  # a job scheduler's run: add its next run before this one runs
                self._advance_scheduler(taken)
            outcome = run(taken)
            done = next(self._done)  # shared by the threads of a "threads" worker
            if outcome is None or taken.abandoned:  # handled already (recovered as stalled, or failed on timeout)
                self._held.pop(taken.member, None)
                taken = None
                continue
            more = not (self._stopping.is_set() or self._recycle or (max_jobs and done >= max_jobs)
                        or self._should_recycle(done))
            taken, wake = self._record(taken, outcome, more)
            if not more:
                return
            if taken is None:  # the finish found nothing to take next: no second look before waiting
                if burst:
                    return
                self._idle(wake)

    def _advance_scheduler(self, taken: Taken) -> None:
        """Add the next run of the scheduler whose run was just taken. Should Redis fail here, the run still runs
        and the keeper's repair adds the next one (``queues.schedulers``)."""
        try:
            schedulers.Schedulers(Queue(taken.queue, connection=self.connection)).advance(
                taken.fields[b"scheduler"].decode(), taken.id, taken.fields.get(b"tick"))
        except redis.RedisError as e:
            logger.warning("job id=%s queue=%s: could not add its scheduler's next run (%s); the keeper will",
                           taken.id, taken.queue, e)
        except Exception:  # never lose the taken run over its scheduler
            logger.exception("job id=%s queue=%s: adding its scheduler's next run failed", taken.id, taken.queue)

    def _record(self, taken: Taken, outcome: Outcome, more: bool) -> tuple[Taken | None, float | None]:  # noqa: FBT001
        """Write ``outcome`` under ``taken``'s lock (and take the next job when ``more``); log, send signals."""
        lc = self._lifecycle
        assert lc is not None
        reply: list[Any] = []

        def finish(token: str | None, reclaim: bool) -> Any:  # noqa: FBT001
            held, nxt = lc.finish(taken, outcome, token if more else None, reclaim=reclaim)
            reply[:] = [held, reclaim]
            return nxt

        nxt = self._call(finish, needs_token=more)
        self._held.pop(taken.member, None)
        held, reclaimed = reply
        if not held:
            if not reclaimed:  # a re-sent finish finds its own earlier write: nothing to say
                logger.error("job id=%s queue=%s: Missing lock: its lock ran out (the job stalled and went back to "
                             "waiting, or was removed) before this run ended; its outcome (%s) is not written",
                             taken.id, taken.queue, outcome.kind)
        else:
            self._announce(taken, outcome)
        return nxt if nxt is not None else (None, None)

    def _call(self, fn: Callable[[str | None, bool], Any], *, needs_token: bool = True) -> Any:
        """Run a hot-path call; when the reply is lost, wait for Redis and send it again marked for reclaim."""
        lc = self._lifecycle
        assert lc is not None
        token = lc.token() if needs_token else None
        reclaim = False
        while True:
            try:
                return fn(token, reclaim)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                logger.warning("worker %s lost Redis (%s); waiting for it to come back", self.name, e)
                reclaim = True
                self._wait_for_redis()

    def _wait_for_redis(self) -> None:
        lc = self._lifecycle
        assert lc is not None
        delay = 0.05
        while True:
            if self._stopping.is_set() and self._stop_requested_at is not None:
                raise Stopped
            try:
                lc.connection.ping()
                logger.info("worker %s: Redis is back", self.name)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _idle(self, wake: float | None) -> None:
        """Wait for a job to be added, the next due time, or at most IDLE_BLOCK (to look at the stop flag)."""
        lc = self._lifecycle
        assert lc is not None
        timeout = IDLE_BLOCK
        if wake is not None:
            until = wake - time.time()
            if until <= BLOCK_TIMEOUT_SLACK:
                # Redis ends a blocking call's timeout only when its event loop wakes (hz 10: every 100 ms):
                # sleep the last stretch here instead, to the millisecond.
                time.sleep(max(until, 0))
                return
            timeout = min(timeout, until - BLOCK_TIMEOUT_SLACK)
        try:
            lc.block(timeout)
        except (redis.ConnectionError, redis.TimeoutError):
            self._wait_for_redis()

    def _should_recycle(self, done: int) -> bool:
        definition = self._definitions[0]
        if not self.pooled or self.mode != "processes":
            return False
        if definition.max_jobs_per_process and done >= definition.max_jobs_per_process:
            self._recycle = True
        elif definition.max_memory_per_process:
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if peak_mib > definition.max_memory_per_process:
                logger.warning("worker %s: %.0f MiB used, over max_memory_per_process (%s MiB): recycling it after "
                               "this job", self.name, peak_mib, definition.max_memory_per_process)
                self._recycle = True
        return self._recycle

    # --- running one job -----------------------------------------------------------------------------------

    def _run_inline(self, taken: Taken) -> Outcome:
        """Run the job in this thread; return its outcome (the shutdown grace running out: REQUEUE)."""
        job = self._job(taken)
        in_main = threading.current_thread() is threading.main_thread()
        try:
            function = job_function(job)
            args, kwargs = job.args, job.kwargs
        except Exception as e:  # refused, or data that cannot be read
            return self._failure(job, e, traceback.format_exc(), retry=False)
        if jobs_logger.isEnabledFor(logging.DEBUG):  # one INFO line per job is enough: its outcome
            jobs_logger.debug("job active id=%s name=%s queue=%s attempt=%d", job.id, job.description, job.origin,
                              lifecycle.attempts_before(job) + 1)
        if job_active.receivers:
            send(job_active, Job(job), attempts_made=lifecycle.attempts_before(job))
        timeout = job.timeout
        deadline = time.monotonic() + timeout if timeout is not None and timeout > 0 else None
        if in_main:
            self._running = True
            self._job_deadline = deadline
            self._job_timeout = timeout
            self._arm_alarm()
        else:
            taken.deadline = deadline
            if deadline is not None and deadline < self._keeper_wakes_at:
                self._nudge.set()  # the keeper looks again before this deadline: it fails the job then
        context = _current_job.set(job)
        try:
            if tracing.ENABLED:
                value = tracing.run(job.origin, job.id, job.description or "", lifecycle.attempts_before(job) + 1,
                                    taken.fields.get(tracing.FIELD), function, args, kwargs)
            else:
                value = function(*args, **kwargs)
            if in_main:  # from here an alarm is ignored; one that came just before is handled below, as it came
                self._running = False
        except GraceExpired:
            logger.warning("job id=%s name=%s queue=%s still running %s s after the stop request: stopping it and "
                           "putting it back to waiting", job.id, job.description, job.origin,
                           f"{get_config().shutdown_grace:g}")
            return REQUEUE
        except Exception as e:
            return self._failure(job, e, traceback.format_exc())
        except JobTimeoutException as e:
            return self._failure(job, e, traceback.format_exc())
        finally:
            if in_main:
                self._running = False
                self._job_deadline = None
                signal.setitimer(signal.ITIMER_REAL, 0)
            _current_job.reset(context)
            try:
                if in_main:
                    close_old_connections()
                else:
                    for connection in connections.all(initialized_only=True):  # this thread's, the ones it opened
                        connection.close()
            except Exception:  # the run is over: its outcome must still be written (the next query reconnects)
                logger.exception("worker %s: closing the database connections after job id=%s failed", self.name,
                                 job.id)
        return lifecycle.completed(job, value, self.name)

    def _job(self, taken: Taken) -> RQJob:
        job = RQJob.from_hash(taken.id, taken.fields, self.connection)
        job.origin = job.origin or taken.queue
        job.worker_name = self.name
        return job

    def _failure(self, job: RQJob, error: BaseException, exc_string: str, *, retry: bool = True) -> Outcome:
        fail_now = (not retry or isinstance(error, UnrecoverableError | JobRefused)
                    or isinstance(error, permanent_errors(job.origin)))
        if fail_now or not job.retries_left or job.retries_left <= 0:
            return lifecycle.failed(job, error, exc_string, self.name, retry=False)
        intervals = job.retry_intervals or []
        number = max(len(intervals) - job.retries_left + 1, 1)
        if job.backoff:
            wait = Backoff.from_spec(job.backoff).wait(number, error)
        else:
            wait = float(intervals[min(number, len(intervals)) - 1]) if intervals else 0.0
        return lifecycle.failed(job, error, exc_string, self.name, retry=True, wait=wait)

    def _run_forked(self, taken: Taken) -> Outcome | None:
        """Run the job in a fresh child process (fork mode); return its outcome, or None when the child died."""
        connections.close_all()  # never share a database socket with the job process
        read_end, write_end = os.pipe()
        parent = os.getpid()
        with self._fork_lock:  # never while the keeper thread is mid-step (see _keep)
            pid = os.fork()
        if pid == 0:  # the job process
            code = 0
            try:
                os.close(read_end)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the worker decides when the job stops
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                if sys.platform.startswith("linux"):  # the job process dies with its worker: never two live runs
                    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                    if os.getppid() != parent:
                        os._exit(1)
                signal.signal(signal.SIGALRM, self._on_alarm)
                if self._definitions[0].limiter is not None:
                    # The limiter counted this job from its take; the limit is about starts, and a fork later (tens
                    # of ms on a loaded host) 11 could start within a window of 10. Count it from now instead.
                    self.connection.zadd(QueueKeys.of(taken.queue).limiter, {taken.member: time.time()}, xx=True)
                outcome = self._run_inline(taken)
                with os.fdopen(write_end, "w") as out:
                    out.write(outcome.to_json())
            except BaseException:  # noqa: BLE001 - the job process must never return into the worker's loop
                logger.exception("job process for job id=%s crashed", taken.id)
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        self._child_pid = pid
        with os.fdopen(read_end) as pipe:
            text = pipe.read()
        _, status = os.waitpid(pid, 0)
        self._child_pid = 0
        if self._child_requeue:
            self._child_requeue = False
            logger.warning("job id=%s name=%s queue=%s still running %s s after the stop request: stopping it and "
                           "putting it back to waiting", taken.id, self._name(taken), taken.queue,
                           f"{get_config().shutdown_grace:g}")
            return REQUEUE
        if text:
            return Outcome.from_json(text)
        how = (f"signal {signal.Signals(-os.waitstatus_to_exitcode(status)).name}"
               if os.WIFSIGNALED(status) else f"exit code {os.waitstatus_to_exitcode(status)}")
        self._stall_now(taken, f"its job process died ({how}) before the job ended")
        return None

    def _stall_now(self, taken: Taken, why: str) -> None:
        lc = self._lifecycle
        assert lc is not None
        logger.warning("job id=%s queue=%s: %s; recovering it as stalled", taken.id, taken.queue, why)
        moved = self._call(lambda _t, _r: lc.recover_stalled(taken.queue, member=taken.member,
                                                              reason=f"job stalled: {why}"), needs_token=False)
        self._announce_stalls(taken.queue, moved)

    # --- after a run ---------------------------------------------------------------------------------------

    def _announce(self, taken: Taken, outcome: Outcome) -> None:
        """Log the outcome and send its signal (after it was written)."""
        kind = outcome.kind
        if kind == "completed":
            if jobs_logger.isEnabledFor(logging.INFO):
                jobs_logger.info("job completed id=%s name=%s queue=%s attempt=%d", taken.id, self._name(taken),
                                 taken.queue, outcome.attempts_made)
            if job_completed.receivers:
                send(job_completed, Job(self._job(taken)), return_value=outcome.return_value)
        elif kind == "retry":
            jobs_logger.warning("job retrying id=%s name=%s queue=%s attempt=%d error=%s: retry in %.3f s", taken.id,
                                self._name(taken), taken.queue, outcome.attempts_made, outcome.reason,
                                max(outcome.due - time.time(), 0))
            if job_retrying.receivers:
                send(job_retrying, Job(self._job(taken)), error=outcome.error, attempts_made=outcome.attempts_made)
        elif kind == "failed":
            jobs_logger.error("job failed id=%s name=%s queue=%s attempt=%d error=%s", taken.id, self._name(taken),
                              taken.queue, outcome.attempts_made, outcome.reason)
            if job_failed.receivers:
                send(job_failed, Job(self._job(taken)), error=outcome.error, attempts_made=outcome.attempts_made)
        elif kind == "requeue":
            jobs_logger.warning("job requeued id=%s name=%s queue=%s: stopped at the end of the shutdown grace",
                                taken.id, self._name(taken), taken.queue)

    @staticmethod
    def _name(taken: Taken) -> str:
        raw = taken.fields.get(b"description")
        return raw.decode(errors="replace") if raw else taken.id  # a hash written by hand may hold any bytes

    def _announce_stalls(self, queue: str, moved: list[tuple[str, int, bool]]) -> None:
        definition = get_definition(queue)
        for job_id, stalls, failed in moved:
            if failed:
                logger.error("job id=%s queue=%s failed: it stalled %d times (max_stalled_count %d)", job_id, queue,
                             stalls, definition.max_stalled_count)
            else:
                logger.warning("job id=%s queue=%s stalled (its worker stopped or lost its lock); back to waiting, "
                               "stall %d of %d allowed", job_id, queue, stalls, definition.max_stalled_count)
            if job_stalled.receivers:
                try:
                    job = RQJob.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
                except NoSuchJobError:  # removed meanwhile
                    continue
                send(job_stalled, Job(job), stalled_count=stalls)

    # --- threads mode ----------------------------------------------------------------------------------------

    def _run_threads(self, *, burst: bool, max_jobs: int | None) -> None:
        count = self._definitions[0].concurrency
        threads = [threading.Thread(target=self._loop, args=(self._run_inline,),
                                    kwargs={"burst": burst, "max_jobs": max_jobs},
                                    name=f"queues-job-{n}", daemon=True) for n in range(count)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            if self._grace_over():
                self._requeue_held("the shutdown grace ran out")
                return
            for thread in threads:
                thread.join(timeout=0.2)

    def _requeue_held(self, why: str) -> None:
        lc = self._lifecycle
        assert lc is not None
        for taken in list(self._held.values()):
            self._held.pop(taken.member, None)
            logger.warning("job id=%s name=%s queue=%s still running %s s after the stop request: stopping it and "
                           "putting it back to waiting", taken.id, self._name(taken), taken.queue,
                           f"{get_config().shutdown_grace:g}")
            try:
                held, _ = lc.finish(taken, REQUEUE, None)
            except redis.RedisError:
                continue  # its lock runs out: recovered as stalled
            if held:
                self._announce(taken, REQUEUE)
        logger.warning("worker %s: %s; running jobs put back to waiting", self.name, why)

    # --- keeping locks, heartbeats and stall checks ----------------------------------------------------------

    def _keep(self) -> None:
        """The keeper thread: extend the locks of running jobs, heart-beat, recover stalled jobs of the queues."""
        lc = self._lifecycle
        assert lc is not None
        period = max(0.5, lc.stalled_interval / 3)
        next_beat = next_flush = 0.0
        # After an outage every worker lost Redis, the owners of running jobs too: their locks ran out meanwhile
        # through no fault of theirs. No stall check until they have had a lock's time to extend them again.
        outage = False
        checks_from = 0.0
        while not (self._stopping.is_set() and not self._held):
            # Fork mode: no job process is forked while this thread is mid-step. A lock it held at the fork (the
            # SQLite library's, a connection pool's) would stay locked forever in the child, which hung in its
            # first query (CI, 1 run in 4 of the fork pass).
            self._fork_lock.acquire()
            try:
                if time.monotonic() >= next_flush and not self._stopping.is_set():
                    next_flush = time.monotonic() + spool.FLUSH_INTERVAL
                    spool.flush_quietly(self.connection, lc.queues)  # jobs Redis could not take at a commit
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + period
                    for taken in lc.extend(list(self._held.values())):
                        if not taken.lost and taken.member in self._held:  # not one that finished meanwhile
                            taken.lost = True
                            logger.error("job id=%s queue=%s: its lock was lost (it stalled and may run elsewhere); "
                                         "its outcome will not be written", taken.id, taken.queue)
                    if outage:
                        outage = False
                        checks_from = time.monotonic() + lc.lock_for
                        logger.info("worker %s: Redis is back; stall checks resume in %.1f s (the time running "
                                    "jobs' workers have to extend their locks)", self.name, lc.lock_for)
                    self.heartbeat()
                    if time.monotonic() >= checks_from:
                        for queue in lc.queues:
                            self._announce_stalls(queue, lc.recover_stalled(queue))
                            schedulers.Schedulers(Queue(queue, connection=self.connection)).repair()
                self._check_deadlines()
            except redis.RedisError as e:
                logger.debug("keeper: %s", e)
                outage = True
                next_beat = min(next_beat, time.monotonic() + 0.25)  # extend the locks as soon as Redis is back
            except Exception:  # the keeper must never die
                logger.exception("worker %s: keeper step failed", self.name)
            finally:
                self._fork_lock.release()
            wait = (next_beat if self._stopping.is_set() else min(next_beat, next_flush)) - time.monotonic()
            if self._stop_requested_at is not None:
                wait = min(wait, 0.25)  # the grace is looked at four times a second
            deadlines = [taken.deadline for taken in list(self._held.values()) if taken.deadline is not None]
            if deadlines:  # threads mode: fail a job past its timeout within ~10 ms
                wait = min(wait, min(deadlines) - time.monotonic())
            wait = max(wait, 0.01)
            self._keeper_wakes_at = time.monotonic() + wait
            self._nudge.wait(wait)
            self._nudge.clear()

    def _check_deadlines(self) -> None:
        """Fork mode: stop a job process past the grace or its timeout. Threads: fail jobs past their timeout."""
        if self._child_pid:
            if self._grace_over():
                self._child_requeue = True
                self._kill_child()
            return
        if self.mode != "threads":
            return
        lc = self._lifecycle
        assert lc is not None
        now = time.monotonic()
        for taken in list(self._held.values()):
            if taken.deadline is not None and now >= taken.deadline and not taken.abandoned:
                taken.abandoned = True  # its thread's result, whenever it comes, is ignored
                self._held.pop(taken.member, None)
                job = self._job(taken)
                error = JobTimeoutException(f"Task exceeded maximum timeout value ({job.timeout} seconds)")
                outcome = self._failure(job, error, f"JobTimeoutException: {error} (its thread keeps running "
                                        "until the function returns; its result is ignored)")
                held, _ = lc.finish(taken, outcome, None)
                if held:
                    self._announce(taken, outcome)

    def _kill_child(self) -> None:
        try:
            os.kill(self._child_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _grace_over(self) -> bool:
        return self._grace_deadline is not None and time.monotonic() >= self._grace_deadline

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        lc = self._lifecycle
        ttl = timeout or math.ceil((lc.stalled_interval if lc else 30) * 2) + 60
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping={"last_heartbeat": rq_time(time.time()),
                                         "state": "busy" if self._held else "idle"})
            pipe.expire(self.key, ttl)
            pipe.execute()

    # --- stopping --------------------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGALRM, self._on_alarm)

    def request_stop(self, signum: int, frame: Any) -> None:
        """SIGTERM / SIGINT: take no new job; the running one may finish within the grace (a second signal: now)."""
        grace = get_config().shutdown_grace
        first = self._stop_requested_at is None
        if not first and time.monotonic() - self._stop_requested_at < SIGNAL_DEBOUNCE:  # type: ignore[operator]
            return  # the same request by another path (the process group's signal, and the supervisor's)
        if first:
            self._stop_requested_at = time.monotonic()
            logger.info("worker %s: %s, stopping after the running job (grace %s s)", self.name,
                        signal.Signals(signum).name, grace)
        if grace is not None:
            deadline = self._stop_requested_at + (grace if first else 0)  # type: ignore[operator]
            self._grace_deadline = deadline if self._grace_deadline is None else min(self._grace_deadline, deadline)
        self._stopping.set()
        self._nudge.set()
        if self._running:
            self._arm_alarm()
        if not first and self._child_pid:
            self._child_requeue = True
            self._kill_child()

    def _arm_alarm(self) -> None:
        """Ring SIGALRM at the earlier of the job's timeout and the end of the grace (main thread only)."""
        deadlines = [d for d in (self._job_deadline, self._grace_deadline) if d is not None]
        if deadlines:
            signal.setitimer(signal.ITIMER_REAL, max(min(deadlines) - time.monotonic(), 0.001))

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if not self._running:
            return  # the job ended meanwhile
        now = time.monotonic()
        if self._grace_deadline is not None and now >= self._grace_deadline:
            raise GraceExpired
        if self._job_deadline is not None and now >= self._job_deadline:
            self._job_deadline = None
            raise JobTimeoutException(f"Task exceeded maximum timeout value ({self._job_timeout} seconds)")
        self._arm_alarm()


class SimpleWorker(Worker):
    """The same worker, taking jobs in this process only (no supervisor, and no fork even for a "fork" queue, as
    RQ's SimpleWorker): for tests and scripts."""

    in_process = True
