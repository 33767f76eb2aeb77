"""The ``@job`` decorator and the registry of job functions.

A job function is registered under a name (its dotted path, or ``name=``) and bound to one queue.
Only registered functions can be added, and a worker runs only registered functions: a job found in
Redis that names any other callable (``os.system``, say) is refused, not imported and called.

The decorator resolves nothing at import time: the queue is looked up when a job is added.
Apps put job functions in ``<app>/jobs.py``; ``AppConfig.ready()`` imports those modules in every
process, web and worker alike, so both see the same registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .exceptions import UnknownJob
from .options import JobOptions, check_names

F = TypeVar("F", bound=Callable[..., Any])

_by_name: dict[str, JobDefinition] = {}
_by_path: dict[str, JobDefinition] = {}


@dataclass(frozen=True)
class JobDefinition:
    """A registered job function: its name, import path, queue ("" for every queue) and decorator options
    (unvalidated values)."""

    name: str
    path: str
    queue: str
    options: dict[str, Any]

    def resolve_options(self, base: JobOptions) -> JobOptions:
        return JobOptions.parse(self.options, f"@job options of {self.name!r}", base, shared=True)


# Django's @task functions (queues.tasks) all run through one job, which belongs to every queue (queue "") and checks
# what it runs itself: a @task of an installed app. It is allowed here by its path, so that a worker allows it
# without importing django.tasks before a task comes; it is not listed, nor added by name.
TASK_RUNNER = JobDefinition(name="queues.tasks.run_task", path="queues.tasks.run_task", queue="", options={})
_by_path[TASK_RUNNER.path] = TASK_RUNNER


def job(queue: str, *, name: str | None = None, **options: Any) -> Callable[[F], F]:
    """Register a module-level function as a job of ``queue``.

    ``data`` given to ``Queue.add()`` reaches the function as keyword arguments. ``options`` (attempts,
    backoff, timeout, …) override the queue's ``default_job_options`` for this job.

    Raises:
        TypeError: the decorated object is not a module-level function.
        InvalidJobOptions: an unknown option name.
        ValueError: ``name`` is already registered for another function.
    """
    if not isinstance(queue, str) or not queue:
        raise TypeError("@job needs the queue's name first: @job('email').")
    check_names(options, f"@job({queue!r})", shared=True)

    def register(func: F) -> F:
        if not inspect.isfunction(func) or "<locals>" in func.__qualname__ or "." in func.__qualname__:
            raise TypeError(f"@job({queue!r}) takes a module-level function, not {func!r}: a worker imports it "
                            "by its dotted path.")
        path = f"{func.__module__}.{func.__qualname__}"
        job_name = name or path
        existing = _by_name.get(job_name)
        if existing is not None and existing.path != path:
            raise ValueError(f"job name {job_name!r} is already registered for {existing.path}; choose another name.")
        definition = JobDefinition(name=job_name, path=path, queue=queue, options=dict(options))
        old = _by_path.pop(path, None)
        if old is not None:
            _by_name.pop(old.name, None)
        _by_name[job_name] = definition
        _by_path[path] = definition
        func.queues_job = definition  # type: ignore[attr-defined]
        return func

    return register


def get_job_definition(job: str | Callable[..., Any]) -> JobDefinition:
    """The definition of a job given by name or by function.

    Raises:
        UnknownJob: nothing registered that name or function.
    """
    if isinstance(job, str):
        definition = _by_name.get(job)
        if definition is None:
            raise UnknownJob(f"No job named {job!r} is registered: decorate the function with @job('<queue>') "
                             "in an app's jobs.py (registered: " + (", ".join(sorted(_by_name)) or "none") + ").")
        return definition
    definition = getattr(job, "queues_job", None)
    if not isinstance(definition, JobDefinition):
        raise UnknownJob(f"{job!r} is not a registered job: decorate it with @job('<queue>') in an app's jobs.py.")
    return definition


def definition_for_path(path: str) -> JobDefinition | None:
    """The definition registered for the function at ``path`` (what a worker checks before running it)."""
    return _by_path.get(path)


def registered_jobs() -> list[JobDefinition]:
    return list(_by_name.values())

