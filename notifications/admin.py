"""The notifications admin: filter, search, see the queue job, and the actions "resend" and "cancel".

An in-app row's change page also shows the message as delivered (title, body) and when its recipient read it.

The job's state is shown on the change page only: the list would cost one Redis call per row, and
``queues`` has no call that reads many jobs' states in one round trip yet. The change page links the job
to django-rq's job page until the queue dashboard lands. Rows are created by the services, never by hand:
adding is off and every field is read-only; the actions go through the same services as the API.
"""

from __future__ import annotations

from typing import Any

import redis
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from exports.actions import export_to_csv_action
from queues import get_queue

from . import services
from .exceptions import NotChangeable
from .jobs import DELIVERY_JOBS
from .models import NOT_STARTED, Channel, Notification, Status


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "recipient", "kind", "channel", "status", "attempts", "scheduled_for", "sent_at",
                    "created_at")
    list_filter = ("status", "kind", "channel")
    search_fields = ("recipient__username", "recipient__email", "=job_id")
    list_select_related = ("recipient",)
    date_hierarchy = "created_at"
    show_full_result_count = False  # no second COUNT(*) over a large table
    actions = ("resend", "cancel", export_to_csv_action(description="Export to CSV"))
    fields = ("recipient", "kind", "channel", "status", "job_state", "job_id", "attempts", "scheduled_for",
              "sent_at", "last_error", "context", "created_at", "updated_at")
    in_app_fields = ("title", "body", "read_at")  # the inbox entry: shown on in-app rows only
    readonly_fields = (*fields, *in_app_fields)

    def get_fields(self, request: HttpRequest, obj: Notification | None = None) -> tuple[str, ...]:
        if obj is not None and obj.channel == Channel.IN_APP:
            at = self.fields.index("sent_at") + 1
            return (*self.fields[:at], *self.in_app_fields, *self.fields[at:])
        return self.fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.resend_notification")

    @admin.display(description="job state")
    def job_state(self, notification: Notification) -> str:
        """The queue's state of the row's job, linked to its page on the queue dashboard."""
        if not notification.job_id:
            return "-"
        queue_name = DELIVERY_JOBS[Channel(notification.channel)][0]
        try:
            handle = get_queue(queue_name).get_job(notification.job_id)
        except (redis.ConnectionError, redis.TimeoutError):
            return "unknown (Redis is unreachable)"
        if handle is None:
            return "not in Redis (never enqueued, or removed after it finished)"
        state = handle.get_state()
        url = _job_url(queue_name, notification.job_id)
        return format_html('<a href="{}">{}</a>', url, state) if url else state

    @admin.action(description="Resend selected failed or canceled notifications", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        self._apply(request, queryset, services.resend, (Status.FAILED, Status.CANCELED), "resent")

    @admin.action(description="Cancel selected pending or queued notifications", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        self._apply(request, queryset, services.cancel, NOT_STARTED, "canceled")

    def _apply(self, request: HttpRequest, queryset: QuerySet[Notification], service: Any,
               allowed: tuple[str, ...], done: str) -> None:
        eligible = list(queryset.filter(status__in=allowed).values_list("pk", flat=True))
        changed, skipped = 0, queryset.count() - len(eligible)
        for pk in eligible:
            try:
                service(pk)
            except NotChangeable:
                skipped += 1  # moved on since the list was shown
            else:
                changed += 1
        if changed:
            self.message_user(request, f"{changed} notification(s) {done}.", messages.SUCCESS)
        if skipped:
            states = " or ".join(allowed)
            self.message_user(request, f"{skipped} notification(s) skipped: only {states} ones can be {done}.",
                              messages.WARNING)


def _job_url(queue_name: str, job_id: str) -> str | None:
    """django-rq's page of the job (the queue dashboard of a later issue will take its place)."""
    try:
        from django_rq.settings import get_queues_map

        return reverse("django_rq:job_detail", args=[get_queues_map()[queue_name], job_id])
    except (NoReverseMatch, KeyError, ImportError):
        return None
