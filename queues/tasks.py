"""Django's task API (``django.tasks``, backported to Django 5.2 by ``django-tasks``) on these queues.

    TASKS = {"default": {"BACKEND": "queues.tasks.QueuesBackend", "QUEUES": ["default", "email"]}}

A ``@task`` function of any installed app is then run by ``manage.py rqworker`` beside the ``@job`` functions:
``enqueue()`` adds a job to the queue named by the task's ``queue_name`` (which ``QUEUES`` must define), so the
queue's default job options (attempts, backoff, retention, timeout), its limiter, pause, events, metrics and
dashboard apply. Each run is a job of one runner, :func:`run_task`, shown under the task's dotted path; its data
is ``{"task": path, "args": [...], "kwargs": {...}}``, JSON within ``QUEUES_MAX_PAYLOAD_BYTES``.

Mapping (README, "Using Django's tasks API"):

- priority: Django's −100…100 (higher first, default 0) is BullMQ's ``101 − priority`` (1 first … 201), so every
  task goes through the queue's prioritized set; a ``@job`` added with no priority is taken before any task.
- ``run_after`` is the job's delay; ``get_result()`` reads the job and its results (one per attempt) from Redis:
  waiting, prioritized and delayed (a retry's wait too) are READY, active RUNNING, completed SUCCESSFUL, failed
  FAILED; ``errors`` has one entry per failed attempt, ``worker_ids`` one per attempt.
- Inside ``transaction.atomic()`` the job is written when the transaction commits, as ``Queue.add`` does (a
  rollback enqueues nothing); the result's id is known at once.
- ``OPTIONS`` are job options for every task of the backend, over the queues' defaults: ``{"attempts": 3}``.

Only a ``Task`` object found at its dotted path in an installed app runs: a job naming anything else is refused
before anything is imported from outside the installed apps.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from django.apps import apps
from django.core import checks
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import TaskContext, TaskResult, TaskResultStatus
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskError
from django_tasks.exceptions import TaskResultDoesNotExist
from django_tasks.signals import task_enqueued, task_finished, task_started
from django_tasks.utils import get_module_path, normalize_json
from rq.results import Result
from typing_extensions import ParamSpec

from .conf import get_config
from .connection import get_connection
from .exceptions import InvalidJobData, InvalidJobOptions, JobRefused, UnrecoverableError
from .job import STATES, Job, current_job
from .options import OPTION_NAMES, JobOptions
from .queue import Queue
from .registry import TASK_RUNNER

T = TypeVar("T")
P = ParamSpec("P")

# Job options a backend's OPTIONS may set for its tasks; the others are per run (priority, delay) or meaningless
# for a task (job_id: every enqueue is a new result).
TASK_OPTION_NAMES = tuple(name for name in OPTION_NAMES if name not in ("priority", "delay", "job_id"))
STATUSES = {
    "waiting": TaskResultStatus.READY, "prioritized": TaskResultStatus.READY, "delayed": TaskResultStatus.READY,
    "active": TaskResultStatus.RUNNING, "completed": TaskResultStatus.SUCCESSFUL, "failed": TaskResultStatus.FAILED,
}


def bullmq_priority(priority: int) -> int:
    """BullMQ's priority (1 first) for Django's (100 first): 100 → 1, 0 → 101, −100 → 201."""
    return 101 - priority


class QueuesBackend(BaseTaskBackend):
    """Runs ``@task`` functions on this app's queues (see the module's docstring)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.job_options = dict(self.options)

    def enqueue(self, task: Task[P, T], args: P.args, kwargs: P.kwargs) -> TaskResult[T]:  # type: ignore[valid-type]
        """Add a run of ``task`` to its queue; return its READY result (its id is the job's).

        Raises:
            InvalidTaskError: the task's queue is not in this backend's ``QUEUES`` (or another of Django's rules).
            InvalidJobData: an argument JSON cannot carry, or the arguments are over ``QUEUES_MAX_PAYLOAD_BYTES``.
            InvalidQueue: the queue is in ``QUEUES`` of the backend but not in the ``QUEUES`` setting (see check).
        """
        self.validate_task(task)
        try:
            call_args, call_kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        except (TypeError, ValueError) as e:
            raise InvalidJobData(f"task {task.module_path}: its arguments must be JSON values ({e}); pass ids and "
                                 "plain data, and load objects inside the task.") from None
        data: dict[str, Any] = {"task": task.module_path, "args": call_args, "kwargs": call_kwargs}
        options = {**self.job_options, "priority": bullmq_priority(task.priority)}
        now = timezone.now()
        if task.run_after is not None:
            data["run_after"] = task.run_after.isoformat()
            options["delay"] = max((task.run_after - now).total_seconds(), 0.0)
        job = Queue(task.queue_name).add_named(run_task, task.module_path, data, **options)
        result: TaskResult[T] = TaskResult(
            task=task, id=job.id, status=TaskResultStatus.READY, enqueued_at=_aware(job.rq_job.created_at),
            started_at=None,
            finished_at=None, last_attempted_at=None, args=call_args, kwargs=call_kwargs, backend=self.alias,
            errors=[], worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The result of the run ``result_id``, read from Redis now.

        Raises:
            TaskResultDoesNotExist: no such job, or a job that is not a task of this backend's queues (its
                retention removed it, say).
            SuspiciousOperation: the job names something that is not a ``@task`` of an installed app (as
                django-tasks' own backends say it).
        """
        handle = self._job(result_id)
        if handle is None:
            raise TaskResultDoesNotExist(result_id)
        # the state from the same read as the times and results' job fields (a second read could see a later state
        # than they do: SUCCESSFUL with no started_at)
        state = STATES.get(handle.rq_job.get_status(refresh=False) or "", "unknown")
        if state not in STATUSES:
            raise TaskResultDoesNotExist(result_id)
        try:
            return task_result(handle, STATUSES[state], self.alias)
        except JobRefused as e:
            raise SuspiciousOperation(str(e)) from None

    def _job(self, result_id: str) -> Job | None:
        if not isinstance(result_id, str) or not result_id:
            return None
        from rq.exceptions import DeserializationError, NoSuchJobError
        from rq.serializers import JSONSerializer

        from .job import RQJob

        try:
            rq_job = RQJob.fetch(result_id, connection=get_connection(), serializer=JSONSerializer)
            if (self.queues and rq_job.origin not in self.queues) or rq_job.func_name != TASK_RUNNER.path:
                return None
        except (NoSuchJobError, DeserializationError, ValueError):  # none, or a hash this app did not write
            return None
        return Job(rq_job)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        """Every name of ``QUEUES`` is a queue of the ``QUEUES`` setting; ``OPTIONS`` are job options
        (``queues.E015``)."""
        defined = get_config().queues
        where = f"TASKS[{self.alias!r}]"
        for name in sorted(self.queues):
            if defined and name not in defined:
                yield checks.Error(f"{where}['QUEUES'] names {name!r}, which is not a queue of QUEUES.",
                                   hint=f"Add {name!r} to QUEUES (a @task without queue_name uses 'default'), or "
                                        f"name one of: {', '.join(defined)}.", id="queues.E015")
        unknown = sorted(set(self.job_options) - set(TASK_OPTION_NAMES))
        if unknown:
            yield checks.Error(f"{where}['OPTIONS'] has {', '.join(map(repr, unknown))}, which tasks cannot set.",
                               hint=f"OPTIONS take job options for every task: {', '.join(TASK_OPTION_NAMES)}.",
                               id="queues.E015")
        else:
            try:
                JobOptions.parse(self.job_options, f"{where}['OPTIONS']")
            except InvalidJobOptions as e:
                yield checks.Error(str(e), hint="See the job options in the README.", id="queues.E015")


def task_result(handle: Job, status: TaskResultStatus, backend: str, *, running_on: str = "") -> TaskResult:
    """The ``TaskResult`` of a task's job: its state ``status``, its attempts from the job's results (and the
    running one, on ``running_on``)."""
    rq_job = handle.rq_job
    data = handle.data
    task: Task = load_task(data.get("task"), handle.id)
    priority = getattr(rq_job, "priority", None)  # this app's RQJob reads it from the hash
    run_after = data.get("run_after")
    changes: dict[str, Any] = {"queue_name": rq_job.origin}
    if priority:
        changes["priority"] = 101 - priority
    if run_after:
        changes["run_after"] = datetime.fromisoformat(run_after)
    results = sorted(rq_job.results(), key=lambda result: result.created_at)
    worker_ids = [result.worker_name for result in results]
    if status is TaskResultStatus.RUNNING:
        worker_ids.append(running_on or rq_job.worker_name or "")
    errors = [TaskError(exception_class_path=exception_path(result.exc_string or ""), traceback=result.exc_string or "")
              for result in results if result.type == Result.Type.FAILED]
    ended = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    result: TaskResult = TaskResult(
        task=task.using(**changes), id=handle.id, status=status, enqueued_at=_aware(rq_job.created_at),
        started_at=_aware(rq_job.started_at), finished_at=_aware(rq_job.ended_at) if ended else None,
        last_attempted_at=_aware(rq_job.started_at), args=data.get("args", []), kwargs=data.get("kwargs", {}),
        backend=backend, errors=errors, worker_ids=worker_ids,
    )
    if status is TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", rq_job.return_value())
    return result


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def exception_path(exc_string: str) -> str:
    """The dotted path of the exception a formatted traceback ends with (``builtins.ValueError``,
    ``myapp.tasks.Failed``): the first line at the left margin after the last frame."""
    lines = exc_string.splitlines()
    last_frame = max((i for i, line in enumerate(lines) if line.startswith("  File ")), default=-1)
    for line in lines[last_frame + 1:]:
        if line and not line[0].isspace():
            name = line.split(":", 1)[0].strip()
            return name if "." in name else f"builtins.{name}"
    return "builtins.Exception"


_tasks: dict[str, Task] = {}


def load_task(path: Any, job_id: str) -> Task:
    """The ``@task`` at ``path``, imported once per process.

    Raises:
        JobRefused: ``path`` is not in an installed app, or is not a ``Task`` there.
    """
    found = _tasks.get(path) if isinstance(path, str) else None
    if found is not None:
        return found
    module = path.rpartition(".")[0] if isinstance(path, str) else ""
    if not module or apps.get_containing_app_config(module) is None:
        raise JobRefused(f"Job {job_id} names the task {path!r}, which is not in an installed app: refused.")
    try:
        found = import_string(path)
    except ImportError as e:
        raise JobRefused(f"Job {job_id} names the task {path!r}, which cannot be imported ({e}): refused (check "
                         "that the worker runs the same code).") from None
    if not isinstance(found, Task):
        raise JobRefused(f"Job {job_id} names {path!r}, which is not a @task function: refused.")
    _tasks[path] = found
    return found


def run_task(task: str, args: list[Any], kwargs: dict[str, Any], run_after: str | None = None) -> Any:
    """The job of every task run: call the ``@task`` at ``task`` (refused unless it is one, in an installed app);
    an ``async def`` task runs to completion in this thread's event loop (``async_to_sync``). A task that raises
    ``SystemExit`` (``exit()``) or ``KeyboardInterrupt`` fails at once; the worker carries on.

    Sends Django's ``task_started`` and ``task_finished`` (for each attempt; a failed one is then retried as the
    queue's options say). The return value must be JSON: anything else fails the run at once (Django's rule).
    """
    running = current_job()
    job_id = running.id if running is not None else ""
    found = load_task(task, job_id)
    backend = found.get_backend()
    sender = type(backend)
    result = None
    if running is not None and (found.takes_context or task_started.receivers or task_finished.receivers):
        result = task_result(running, TaskResultStatus.RUNNING, backend.alias, running_on=running.worker_name or "")
        task_started.send(sender, task_result=result)
    call_args = [TaskContext(task_result=result), *args] if found.takes_context and result is not None else args
    try:
        func = found.func
        try:
            value = async_to_sync(func)(*call_args, **kwargs) if _is_async(func) else func(*call_args, **kwargs)
        except (SystemExit, KeyboardInterrupt) as e:  # the task's own exit(), not a signal (the worker takes those)
            raise UnrecoverableError(f"task {task} raised {type(e).__name__}({e}): failed, the worker goes on.") from e
        try:
            value = normalize_json(value)
        except (TypeError, ValueError) as e:  # another attempt would return the same: fail now, not again
            raise UnrecoverableError(f"task {task} returned a value JSON cannot carry ({e}): return plain data "
                                     "(dicts, lists, str, numbers) or ids.") from e
    except BaseException as e:
        if result is not None and isinstance(e, Exception):
            _finished(result, TaskResultStatus.FAILED, error=e)
            task_finished.send(sender, task_result=result)
        raise
    if result is not None:
        _finished(result, TaskResultStatus.SUCCESSFUL, value=value)
        task_finished.send(sender, task_result=result)
    return value


def _is_async(func: Any) -> bool:
    from inspect import iscoroutinefunction

    return iscoroutinefunction(func)


def _finished(result: TaskResult, status: TaskResultStatus, *, value: Any = None,
              error: BaseException | None = None) -> None:
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    if error is not None:
        result.errors.append(TaskError(exception_class_path=get_module_path(type(error)),
                                       traceback="".join(traceback.format_exception(error))))
    else:
        object.__setattr__(result, "_return_value", value)


run_task.queues_job = TASK_RUNNER  # type: ignore[attr-defined]
