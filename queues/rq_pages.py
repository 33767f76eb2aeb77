"""django-rq's own pages (job details, registries, workers) behind this app's permissions.

django-rq lets any staff user requeue, delete or stop jobs from its pages. Mounted through this module
(``path("admin/django-rq/", include("queues.rq_pages"))``), reading them needs ``queues.view_queue`` and
every POST (delete, requeue, empty, stop, bulk actions) needs ``queues.manage``, the permissions of the
queues dashboard. Set ``RQ_SHOW_ADMIN_LINK = False`` too, or django-rq also mounts them unguarded in the
admin (``manage.py check`` warns, ``queues.W001``). Its ``stats.json`` and ``metrics`` keep their own
authentication (staff, or the ``RQ_API_TOKEN`` bearer).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

VIEW_PERMISSION = "queues.view_queue"
MANAGE_PERMISSION = "queues.manage"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` for staff with ``queues.view_queue`` (reading) or ``queues.manage`` (any other method).

    Anonymous users go to the admin login, as on every admin page; others without the permission get 403.
    """

    @wraps(view)
    def check(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        needed = VIEW_PERMISSION if request.method in SAFE_METHODS else MANAGE_PERMISSION
        if not request.user.has_perm(needed):
            raise PermissionDenied(f"This needs the {needed!r} permission.")
        return view(request, *args, **kwargs)

    return admin.site.admin_view(check)


app_name = "django_rq"  # django-rq's templates reverse "django_rq:…"
urlpatterns = get_api_urlpatterns() + get_admin_urlpatterns(view_wrapper=guarded)
