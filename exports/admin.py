"""The exports admin: each user's own exports (superusers: everyone's), their progress and a download link.

Exports are made by the "Export to CSV" action (``exports.actions.export_to_csv_action``, re-exported here), never
added by hand, and are read-only. Any staff user may view their own exports: they started them, and the download
view checks ownership again. Deleting one (``exports.delete_export``) deletes its file too.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from .actions import export_to_csv_action
from .models import Export, Status

__all__ = ["ExportAdmin", "export_to_csv_action"]


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ("id", "model_label", "status", "progress_percent", "row_count", "created_by", "created_at",
                    "finished_at", "download")
    list_filter = ("status", "model_label")
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"
    fields = ("model_label", "status", "progress_percent", "row_count", "download", "fields", "error", "job_id",
              "created_by", "created_at", "finished_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Export]:
        queryset = super().get_queryset(request).defer("pks")  # the selection can be long; the pages never show it
        return queryset if request.user.is_superuser else queryset.filter(created_by=request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Export | None = None) -> bool:
        return request.user.is_active and request.user.is_staff  # get_queryset limits them to their own

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Export | None = None) -> bool:
        return False

    @admin.display(description="progress")
    def progress_percent(self, export: Export) -> str:
        return f"{export.progress} %"

    @admin.display(description="file")
    def download(self, export: Export) -> Any:
        if export.status != Status.DONE or not export.file:
            return "-"
        return format_html('<a href="{}">Download CSV</a>', reverse("exports:download", args=[export.pk]))
