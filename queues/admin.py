"""The "Queues" entry of the admin: its change list is the dashboard (see ``queues/views.py``).

URLs, under ``admin/queues/queue/``:

- ``""``: every queue (``admin:queues_queue_changelist``);
- ``_stats/``: the same numbers as JSON, for the live refresh (``admin:queues_queue_stats``);
- ``<queue>/``: one queue and its jobs (``admin:queues_queue_queue``);
- ``<queue>/<action>/``: POST pause, resume, retry, clean, drain (``admin:queues_queue_action``).

Queue names start with a letter or digit, so ``_stats`` can never be a queue's page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from . import views
from .models import Queue


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    """No rows to add, change or delete: the change list is the dashboard, read from Redis."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return views.can_view(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return views.can_view(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return views.dashboard_view(request, self)

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse], *, with_admin: bool = True) -> Callable[..., HttpResponse]:
            def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                request.current_app = self.admin_site.name
                if with_admin:
                    return view(request, self, *args, **kwargs)
                return view(request, *args, **kwargs)

            return self.admin_site.admin_view(update_wrapper(wrapper, view))

        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        urls = [
            path("_stats/", wrap(views.stats_view, with_admin=False), name=f"{prefix}_stats"),
            path("<str:queue_name>/", wrap(views.queue_view), name=f"{prefix}_queue"),
            path("<str:queue_name>/<str:action>/", wrap(views.action_view), name=f"{prefix}_action"),
        ]
        return urls + super().get_urls()
