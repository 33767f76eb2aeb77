"""System checks (``manage.py check``): the shape of the settings, never the network."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .conf import JSON_SERIALIZER, load_config
from .registry import registered_jobs

JSON_SERIALIZERS = {JSON_SERIALIZER, "json"}


@checks.register("queues")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report every problem in QUEUES, QUEUES_REDIS and QUEUES_MAX_PAYLOAD_BYTES."""
    config = load_config()
    messages: list[checks.CheckMessage] = [
        checks.Error(problem.msg, hint=problem.hint, id=f"queues.{problem.id}") for problem in config.problems
    ]
    for definition in registered_jobs():
        if config.queues and definition.queue not in config.queues:
            messages.append(checks.Error(
                f"@job({definition.queue!r}) on {definition.path}: queue {definition.queue!r} is not in QUEUES.",
                hint=f"Add {definition.queue!r} to QUEUES, or name one of: {', '.join(config.queues)}.",
                id="queues.E010",
            ))
    return messages


@checks.register("queues")
def check_schedulers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every scheduler of QUEUES_JOB_SCHEDULERS: its queue, job, rule and options (queues.E014)."""
    from .schedulers import settings_definitions

    _definitions, problems = settings_definitions()
    return [checks.Error(msg, hint=hint, id="queues.E014") for msg, hint in problems]


@checks.register("queues")
def check_django_rq(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django-rq must see every queue, run this app's worker class and never pickle."""
    from .worker import Worker

    messages: list[checks.CheckMessage] = []
    rq_queues = getattr(settings, "RQ_QUEUES", None)
    missing = [name for name in load_config().queues if rq_queues is None or name not in rq_queues]
    if missing:
        messages.append(checks.Error(
            f"RQ_QUEUES does not define {', '.join(map(repr, missing))}, so django-rq's rqworker and admin "
            "cannot see them.",
            hint="Set RQ_QUEUES = queues.conf.RQQueues() in settings.py: it derives RQ_QUEUES from QUEUES.",
            id="queues.E007",
        ))
    for name in load_config().queues:
        serializer = (rq_queues or {}).get(name, {}).get("SERIALIZER") if name not in missing else None
        if serializer is not None and str(serializer) not in JSON_SERIALIZERS:
            messages.append(checks.Error(
                f"RQ_QUEUES[{name!r}] sets the serializer {serializer!r}; this app reads and writes JSON only.",
                hint="Remove SERIALIZER (RQQueues() sets JSON): pickle lets anyone who can write to Redis run code.",
                id="queues.E008",
            ))
    rq_settings = getattr(settings, "RQ", {})
    worker_class = rq_settings.get("WORKER_CLASS", "rq.Worker")
    try:
        cls = import_string(worker_class) if isinstance(worker_class, str) else worker_class
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        messages.append(checks.Error(
            f"RQ['WORKER_CLASS'] is {worker_class!r}, so `manage.py rqworker` would run RQ's own worker, "
            "which unpickles jobs and skips this app's rules.",
            hint="Set RQ = {'WORKER_CLASS': 'queues.worker.Worker', 'JOB_CLASS': 'queues.job.RQJob'}.",
            id="queues.E009",
        ))
    return messages


@checks.register("queues")
def check_django_rq_admin(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django-rq's own admin entry lets every staff user delete and requeue jobs: warn while it is on."""
    if "django_rq" in settings.INSTALLED_APPS and getattr(settings, "RQ_SHOW_ADMIN_LINK", True):
        return [checks.Warning(
            "django-rq registers its pages in the admin for every staff user, who can then delete, requeue and "
            "stop jobs without the queues.manage permission.",
            hint="Set RQ_SHOW_ADMIN_LINK = False and mount path('admin/django-rq/', include('queues.rq_pages')), "
                 "which asks for queues.view_queue to read and queues.manage to act.",
            id="queues.W001",
        )]
    return []
