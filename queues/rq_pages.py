"""django-rq's own pages (job details, registries, workers) behind this app's permissions.

django-rq lets any staff user requeue, delete or stop jobs from its pages. Mounted through this module
(``path("admin/django-rq/", include("queues.rq_pages"))``), reading them needs ``queues.view_queue`` and
every POST (delete, requeue, empty, stop, bulk actions) needs ``queues.manage``, the permissions of the
queues dashboard. Set ``RQ_SHOW_ADMIN_LINK = False`` too, or django-rq also mounts them unguarded in the
admin (``manage.py check`` warns, ``queues.W001``). Its ``stats.json`` and ``metrics`` keep their own
authentication (staff, or the ``RQ_API_TOKEN`` bearer). While Redis cannot be reached, every page answers 503
with the reason (``Redis at host:port/db could not be reached (...)``), as the queues dashboard does, not a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import redis
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern
from django.utils.html import escape
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from .dashboard import redis_error

VIEW_PERMISSION = "queues.view_queue"
MANAGE_PERMISSION = "queues.manage"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def redis_unavailable(view: Callable[..., HttpResponse], *, as_json: bool = False) -> Callable[..., HttpResponse]:
    """``view``, answering 503 with the reason while Redis cannot be reached (in JSON for ``as_json``)."""

    @wraps(view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            message = redis_error(e)
            if as_json:
                return JsonResponse({"error": message}, status=503)
            return HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")

    return answer


def unreadable_job(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view``, answering a page that says so when RQ cannot read a job hash it shows (a field written by something
    other than this app: ``timeout="abc"``, text that is not UTF-8...), instead of a 500. The worker fails such a job
    at once (``RQJob.check_readable``); the Queues dashboard lists it and can remove it."""

    @wraps(view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (ValueError, TypeError, AssertionError) as e:  # RQ's Job.restore on a field it cannot parse
            job_id = kwargs.get("job_id", "")
            return HttpResponse(f"Job {escape(job_id)} has a field RQ cannot read ({escape(type(e).__name__)}: "
                                f"{escape(str(e)[:300])}), so django-rq cannot show it. A worker fails such a job at "
                                "once; the Queues dashboard lists it and can remove it.",
                                content_type="text/html; charset=utf-8")

    return answer


def guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` for staff with ``queues.view_queue`` (reading) or ``queues.manage`` (any other method).

    Anonymous users go to the admin login, as on every admin page; others without the permission get 403.
    While Redis cannot be reached, the ones allowed in get 503 (:func:`redis_unavailable`).
    """
    view = redis_unavailable(unreadable_job(view))

    @wraps(view)
    def check(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        needed = VIEW_PERMISSION if request.method in SAFE_METHODS else MANAGE_PERMISSION
        if not request.user.has_perm(needed):
            raise PermissionDenied(f"This needs the {needed!r} permission.")
        return view(request, *args, **kwargs)

    return admin.site.admin_view(check)


def fresh_registry_after_failure(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """django-rq's ``metrics`` builds its registry on the first request and keeps it; when that first collection
    fails (Redis down), the registry is kept without its collector and every later scrape is empty until a restart.
    Forget it after a failure, so the next request builds it again."""

    @wraps(view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Exception:
            from django_rq import stats_views

            stats_views.registry = None
            raise

    return answer


def api_urlpatterns() -> list[URLPattern]:
    """django-rq's ``stats.json`` (503 in JSON) and ``metrics`` (503 in text) while Redis cannot be reached."""
    patterns = get_api_urlpatterns()
    for pattern in patterns:
        callback = fresh_registry_after_failure(pattern.callback) if pattern.name == "metrics" else pattern.callback
        pattern.callback = redis_unavailable(callback, as_json=pattern.name == "home_json")
    return patterns


app_name = "django_rq"  # django-rq's templates reverse "django_rq:…"
urlpatterns = api_urlpatterns() + get_admin_urlpatterns(view_wrapper=guarded)
