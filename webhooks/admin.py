"""The webhooks admin: endpoints (the secret shown once, on the page right after creation) and their deliveries
(read-only, filtered by endpoint and outcome, with a "redeliver" action).

The new endpoint's secret is rendered in the answer to the add form itself, not put in a success message: Django
keeps messages in a cookie (signed, not encrypted) until the next page. After that page, the admin shows only
``whsec_…abcd``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from . import services
from .exceptions import NotRedeliverable
from .models import Delivery, Endpoint

SUCCESS = Q(status_code__gte=200, status_code__lt=300)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "subscribed_events", "is_active", "masked_secret", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url",)
    readonly_fields = ("masked_secret", "created_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # "example.com/hooks" → https://

    def get_fields(self, request: HttpRequest, obj: Endpoint | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("url", "events", "is_active")  # the secret is generated on save
        return ("url", "events", "is_active", "masked_secret", "created_at")

    @admin.display(description="events")
    def subscribed_events(self, endpoint: Endpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="secret")
    def masked_secret(self, endpoint: Endpoint) -> str:
        return endpoint.masked_secret

    def response_add(self, request: HttpRequest, obj: Endpoint, post_url_continue: str | None = None) -> HttpResponse:
        """Show the new endpoint's secret, once, on a page of its own that no cache keeps."""
        if "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(request, f"The endpoint {obj.url} was added.", messages.SUCCESS)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "endpoint": obj,
                   "secret": obj.secret, "title": "Copy the endpoint's signing secret"}
        response = TemplateResponse(request, "admin/webhooks/endpoint/secret.html", context)
        add_never_cache_headers(response)
        return response


class OutcomeFilter(admin.SimpleListFilter):
    """Success (a 2xx answer) or failed (any other answer, or none)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("success", "Success (2xx)"), ("failed", "Failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        if self.value() == "success":
            return queryset.filter(SUCCESS)
        if self.value() == "failed":
            return queryset.filter(Q(status_code__isnull=True) | Q(status_code__lt=200) | Q(status_code__gte=300))
        return queryset


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Read-only: a delivery is a record of what happened. Redelivering adds a new job, which adds new rows."""

    list_display = ("created_at", "endpoint", "event", "payload_id", "attempt", "outcome", "status_code",
                    "duration_ms")
    list_filter = ("endpoint", OutcomeFilter, "event")
    search_fields = ("=payload_id", "event", "endpoint__url")
    list_select_related = ("endpoint",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ("redeliver",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.redeliver_delivery")

    @admin.display(description="outcome", boolean=True)
    def outcome(self, delivery: Delivery) -> bool:
        return delivery.succeeded

    @admin.action(description="Redeliver the selected deliveries' events", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Enqueue each selected (event, endpoint) once more, however many of its attempts were selected."""
        pairs = sorted(set(queryset.values_list("payload_id", "endpoint_id")))
        done, refused = 0, []
        for payload_id, endpoint_id in pairs:
            try:
                services.redeliver(payload_id, endpoint_id)
            except NotRedeliverable as e:
                refused.append(str(e))
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} event(s) enqueued for delivery again.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.WARNING)
