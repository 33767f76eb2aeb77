"""The admin dashboard's views: every queue, one queue's jobs, the live-refresh JSON, and the actions.

``queues/admin.py`` mounts them under the admin (``admin_site.admin_view``: staff only, anonymous users are sent
to the login page, CSRF checked). Seeing them takes ``queues.view_queue`` (or ``queues.manage``); the actions
take ``queues.manage``, are POST only, and the destructive ones (clean, drain) ask for confirmation first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import redis
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import dashboard
from .conf import get_config
from .exceptions import QueuesError
from .queue import Queue

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

PAGE_SIZE = 20
CLEAN_STATES = ("completed", "failed", "delayed", "waiting", "prioritized")
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
MAX_CLEAN_LIMIT = 10_000
# Which old jobs a clean cut short by its limit removes: it walks the state's list or sorted set from its head.
CLEAN_ORDER = {"completed": "whose retention runs out first", "failed": "whose retention runs out first",
               "delayed": "due first", "waiting": "next in line", "prioritized": "next in line"}


def can_view(request: HttpRequest) -> bool:
    user = request.user
    return user.is_active and user.is_staff and (user.has_perm("queues.view_queue") or user.has_perm("queues.manage"))


def can_manage(request: HttpRequest) -> bool:
    user = request.user
    return user.is_active and user.is_staff and user.has_perm("queues.manage")


def refresh_seconds() -> float:
    """``QUEUES_DASHBOARD_REFRESH``: seconds between live refreshes (default 5; a bad value fails the checks)."""
    return get_config().dashboard_refresh


def _url(name: str, *args: Any) -> str:
    return reverse(f"admin:queues_queue_{name}", args=args)


def _queue_or_404(queue_name: str) -> Queue:
    if queue_name not in dashboard.queue_names():
        raise Http404(f"No queue named {queue_name!r} in QUEUES.")
    return Queue(queue_name)


def _base_context(request: HttpRequest, model_admin: ModelAdmin, title: str) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "can_manage": can_manage(request),
        "connection": dashboard.connection_label(),
        "refresh_ms": int(refresh_seconds() * 1000),
        "refresh_seconds": f"{refresh_seconds():g}",
        "stats_url": _url("stats"),
        "dashboard_url": _url("changelist"),
    }


def _rendered(stats: dashboard.QueueStats) -> dict[str, str]:
    """The chart and health cells as the templates draw them, for the live refresh to swap in."""
    return {
        "chart": render_to_string("admin/queues/_chart.html", {"q": stats}),
        "health": render_to_string("admin/queues/_health.html", {"q": stats}),
    }


@never_cache
def dashboard_view(request: HttpRequest, model_admin: ModelAdmin) -> HttpResponse:
    """Every queue: counts, state, limiter, concurrency, workers, a chart of the last hour, health."""
    if not can_view(request):
        raise PermissionDenied
    context = _base_context(request, model_admin, "Queues")
    try:
        context["queues"] = dashboard.all_stats()
    except redis.RedisError as e:
        context["queues"], context["redis_error"] = [], dashboard.redis_error(e)
    return TemplateResponse(request, "admin/queues/dashboard.html", context)


@never_cache
@require_GET
def stats_view(request: HttpRequest) -> JsonResponse:
    """The dashboard's numbers as JSON, for the live refresh: every queue, or ``?queue=<name>`` (with the
    progress of its first page of active jobs)."""
    if not can_view(request):
        raise PermissionDenied
    name = request.GET.get("queue")
    try:
        if name:
            queue = _queue_or_404(name)
            stats = [dashboard.queue_stats(name)]
            progress = dashboard.active_progress(queue, PAGE_SIZE)
        else:
            stats, progress = dashboard.all_stats(), {}
    except redis.RedisError as e:
        return JsonResponse({"error": dashboard.redis_error(e)}, status=503)
    return JsonResponse({"queues": [{**s.as_json(), "html": _rendered(s)} for s in stats], "progress": progress})


@never_cache
def queue_view(request: HttpRequest, model_admin: ModelAdmin, queue_name: str) -> HttpResponse:
    """One queue: its numbers, the actions, and one page of its jobs in one state."""
    if not can_view(request):
        raise PermissionDenied
    queue = _queue_or_404(queue_name)
    asked = request.GET.get("state")
    context = _base_context(request, model_admin, f"Queue “{queue_name}”")
    context.update({"queue_name": queue_name, "state": opening_state(asked, {}), "states": dashboard.JOB_STATES,
                    "clean_states": CLEAN_STATES, "units": list(UNITS), "max_clean_limit": MAX_CLEAN_LIMIT,
                    "django_rq_url": _django_rq_home()})
    try:
        stats = dashboard.queue_stats(queue_name)
        state = context["state"] = opening_state(asked, stats.counts)
        paginator: Paginator[Any] = Paginator(_CountedList(stats.counts[state]), PAGE_SIZE)  # type: ignore[arg-type]
        page = paginator.get_page(request.GET.get("page"))
        start = (page.number - 1) * PAGE_SIZE
        context.update({"q": stats, "page": page, "paginator": paginator,
                        "tabs": [(s, stats.counts[s]) for s in dashboard.JOB_STATES],
                        "jobs": dashboard.job_rows(queue, state, start, start + PAGE_SIZE - 1),
                        "schedulers": queue.get_job_schedulers()})
    except redis.RedisError as e:
        context["redis_error"] = dashboard.redis_error(e)
    return TemplateResponse(request, "admin/queues/queue.html", context)


def opening_state(asked: str | None, counts: dict[str, int]) -> str:
    """The tab a queue page shows: the state ``asked`` for (``?state=``), else the first tab with jobs, else the
    first tab (active)."""
    if asked and asked in dashboard.JOB_STATES:
        return asked
    return next((state for state in dashboard.JOB_STATES if counts.get(state)), dashboard.JOB_STATES[0])


class _CountedList:
    """A sequence of ``count`` items that the paginator only ever asks the length of."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, item: Any) -> list[Any]:
        return []


def _django_rq_home() -> str | None:
    try:
        return reverse("django_rq:home")
    except NoReverseMatch:  # django-rq's URLs are not mounted in this project
        return None


class RetryForm(forms.Form):
    job_id = forms.CharField(required=False, max_length=200)


class SchedulerForm(forms.Form):
    scheduler_id = forms.CharField(max_length=200)


class CleanForm(forms.Form):
    state = forms.ChoiceField(choices=[(s, s) for s in CLEAN_STATES])
    age = forms.IntegerField(min_value=0, initial=0)
    unit = forms.ChoiceField(choices=[(u, u) for u in UNITS], initial="hours")
    limit = forms.IntegerField(min_value=1, max_value=MAX_CLEAN_LIMIT, initial=1000)

    def grace(self) -> timedelta:
        return timedelta(seconds=self.cleaned_data["age"] * UNITS[self.cleaned_data["unit"]])


class DrainForm(forms.Form):
    include_delayed = forms.BooleanField(required=False)


def _back(request: HttpRequest, queue_name: str) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = _url("queue", queue_name)
    return HttpResponseRedirect(target)


def clean_question(queue_name: str, state: str, age: str, *, older: int, limit: int) -> str:
    """The clean's confirmation: how many jobs go, the ``older`` ones (than ``age``) or ``limit`` of them (which)."""
    if older <= limit:
        how_many = f"the {older:,} {state} job(s) of “{queue_name}” older than {age}"
    else:
        how_many = (f"{limit:,} of the {older:,} {state} job(s) of “{queue_name}” older than {age} (the limit: "
                    f"the {limit:,} {CLEAN_ORDER[state]})")
    return f"Remove {how_many}? Their data and results are deleted for good."


def _age_text(grace: timedelta) -> str:
    seconds = int(grace.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


@never_cache
@require_POST
def action_view(request: HttpRequest, model_admin: ModelAdmin, queue_name: str, action: str) -> HttpResponse:
    """Pause, resume, retry (one job or all failed), clean or drain; POST only, ``queues.manage`` only."""
    if not can_manage(request):
        raise PermissionDenied
    handlers = {"pause": _pause, "resume": _resume, "retry": _retry, "clean": _clean, "drain": _drain,
                "run_scheduler": _run_scheduler, "remove_scheduler": _remove_scheduler}
    if action not in handlers:
        raise Http404(f"No action {action!r}.")
    queue = _queue_or_404(queue_name)
    try:
        return handlers[action](request, model_admin, queue)
    except redis.RedisError as e:
        messages.error(request, dashboard.redis_error(e))
    except QueuesError as e:
        messages.error(request, str(e))
    return _back(request, queue_name)


def _pause(request: HttpRequest, model_admin: ModelAdmin, queue: Queue) -> HttpResponse:
    queue.pause()
    messages.success(request, f"Queue “{queue.name}” paused: no worker takes its jobs until it is resumed "
                              "(running jobs finish).")
    return _back(request, queue.name)


def _resume(request: HttpRequest, model_admin: ModelAdmin, queue: Queue) -> HttpResponse:
    queue.resume()
    messages.success(request, f"Queue “{queue.name}” resumed.")
    return _back(request, queue.name)


def _retry(request: HttpRequest, model_admin: ModelAdmin, queue: Queue) -> HttpResponse:
    form = RetryForm(request.POST)
    job_id = form.cleaned_data["job_id"] if form.is_valid() else ""
    if job_id:
        job = queue.get_job(job_id)
        if job is None or job.queue_name != queue.name:
            messages.error(request, f"Job {job_id} is not in queue “{queue.name}” any more.")
        elif job.retry():
            messages.success(request, f"Job {job_id} moved back to waiting.")
        else:
            messages.error(request, f"Job {job_id} is {job.get_state()}: only failed or completed jobs can be "
                                    "retried.")
    else:
        count = queue.retry_jobs("failed")
        messages.success(request, f"{count} failed job(s) of “{queue.name}” moved back to waiting.")
    return _back(request, queue.name)


def _confirm(request: HttpRequest, model_admin: ModelAdmin, queue: Queue, action: str, question: str,
             fields: dict[str, Any]) -> HttpResponse:
    context = _base_context(request, model_admin, "Are you sure?")
    context.update({"queue_name": queue.name, "action": action, "question": question, "fields": fields,
                    "action_url": _url("action", queue.name, action), "next": request.POST.get("next", ""),
                    "cancel_url": _url("queue", queue.name)})
    return TemplateResponse(request, "admin/queues/confirm.html", context)


def _clean(request: HttpRequest, model_admin: ModelAdmin, queue: Queue) -> HttpResponse:
    form = CleanForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(str(message) for message in e)}" for name, e in form.errors.items())
        messages.error(request, f"Nothing cleaned: {errors}")
        return _back(request, queue.name)
    data, grace = form.cleaned_data, form.grace()
    if request.POST.get("confirm") != "yes":
        older = dashboard.clean_count(queue, data["state"], grace)
        if not older:
            messages.info(request, f"Nothing to clean: no {data['state']} job of “{queue.name}” is older than "
                                   f"{_age_text(grace)}.")
            return _back(request, queue.name)
        question = clean_question(queue.name, data["state"], _age_text(grace), older=older, limit=data["limit"])
        return _confirm(request, model_admin, queue, "clean", question,
                        {key: data[key] for key in ("state", "age", "unit", "limit")})
    removed = queue.clean(grace, limit=data["limit"], state=data["state"])
    messages.success(request, f"Removed {len(removed)} {data['state']} job(s) older than {_age_text(grace)} from "
                              f"“{queue.name}”.")
    return _back(request, queue.name)


def _drain(request: HttpRequest, model_admin: ModelAdmin, queue: Queue) -> HttpResponse:
    form = DrainForm(request.POST)
    include_delayed = form.is_valid() and form.cleaned_data["include_delayed"]
    if request.POST.get("confirm") != "yes":
        counts = queue.get_job_counts()
        total = counts["waiting"] + counts["prioritized"] + (counts["delayed"] if include_delayed else 0)
        which = "waiting, prioritized and delayed" if include_delayed else "waiting and prioritized"
        question = (f"Remove all {total} {which} job(s) of “{queue.name}”? Active jobs finish; completed and "
                    "failed jobs stay. Removed jobs are deleted for good.")
        return _confirm(request, model_admin, queue, "drain", question,
                        {"include_delayed": "on"} if include_delayed else {})
    count = queue.drain(include_delayed=include_delayed)
    messages.success(request, f"Drained “{queue.name}”: {count} job(s) removed.")
    return _back(request, queue.name)


def _scheduler_id(request: HttpRequest) -> str:
    form = SchedulerForm(request.POST)
    return form.cleaned_data["scheduler_id"] if form.is_valid() else ""


def _run_scheduler(request: HttpRequest, model_admin: ModelAdmin, queue: Queue) -> HttpResponse:
    scheduler_id = _scheduler_id(request)
    job_id = queue.run_job_scheduler_now(scheduler_id)  # InvalidScheduler: shown as an error
    messages.success(request, f"Job scheduler “{scheduler_id}”: one run added now ({job_id}); its next run is "
                              "unchanged.")
    return _back(request, queue.name)


def _remove_scheduler(request: HttpRequest, model_admin: ModelAdmin, queue: Queue) -> HttpResponse:
    scheduler_id = _scheduler_id(request)
    if request.POST.get("confirm") != "yes":
        found = queue.get_job_scheduler(scheduler_id)
        if found is None:
            messages.error(request, f"Queue “{queue.name}” has no job scheduler “{scheduler_id}”.")
            return _back(request, queue.name)
        note = (" It comes from QUEUES_JOB_SCHEDULERS: the next worker start adds it again unless it is taken out "
                "of the settings.") if found["origin"] == "settings" else ""
        question = (f"Remove the job scheduler “{scheduler_id}” ({found['job']}, {found['rule']}) and its pending "
                    f"run? A run already started finishes.{note}")
        return _confirm(request, model_admin, queue, "remove_scheduler", question, {"scheduler_id": scheduler_id})
    if queue.remove_job_scheduler(scheduler_id):
        messages.success(request, f"Job scheduler “{scheduler_id}” removed, with its pending run.")
    else:
        messages.error(request, f"Queue “{queue.name}” has no job scheduler “{scheduler_id}”.")
    return _back(request, queue.name)
