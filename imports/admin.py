"""The user imports admin: "add" is the upload; an import's page shows its status, counts, progress and the
report of rejected rows. Nothing of an import is edited by hand.

Who: uploading needs ``imports.add_userimport``; whoever may upload also sees (and may delete, with
``delete_userimport``) the imports they uploaded. A superuser sees everyone's.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .forms import UploadForm
from .models import UserImport

DETAIL_FIELDS = ("file_name", "created_by", "status", "progress_display", "total", "created", "updated",
                 "unchanged", "rejected", "report_link", "error", "created_at", "finished_at")


@admin.register(UserImport)
class UserImportAdmin(admin.ModelAdmin):
    list_display = ("id", "file_name", "created_by", "status", "progress_display", "total", "created", "updated",
                    "rejected", "created_at", "finished_at")
    list_filter = ("status",)
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserImport]:
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(created_by=request.user)

    def has_view_permission(self, request: HttpRequest, obj: UserImport | None = None) -> bool:
        # Uploaders follow their own imports (get_queryset limits them to those).
        return super().has_view_permission(request, obj) or self.has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: UserImport | None = None) -> bool:
        return False  # an import's page is read-only

    def get_form(self, request: HttpRequest, obj: UserImport | None = None, change: bool = False,  # noqa: FBT001,FBT002 - Django's signature
                 **kwargs: Any) -> type[ModelForm]:
        if obj is None:
            kwargs["form"] = UploadForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: UserImport | None = None) -> tuple[str, ...]:
        return ("file",) if obj is None else DETAIL_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: UserImport | None = None) -> tuple[str, ...]:
        return () if obj is None else DETAIL_FIELDS

    def save_model(self, request: HttpRequest, obj: UserImport, form: ModelForm, change: bool) -> None:  # noqa: FBT001 - Django's signature
        if not change:
            obj.created_by_id = request.user.pk
            obj.status = UserImport.Status.PENDING
        super().save_model(request, obj, form, change)
        if not change:
            services.start(obj)  # the admin saves inside a transaction: the job is written when it commits

    def response_add(self, request: HttpRequest, obj: UserImport, post_url_continue: str | None = None
                     ) -> HttpResponse:
        """Go to the import's page, where its progress shows, rather than to the list."""
        self.message_user(request, f"“{obj.file_name}” is uploaded; its import is queued. Reload this page to "
                                   "follow its progress.", messages.SUCCESS)
        opts = self.opts
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk],
                                            current_app=self.admin_site.name))

    def delete_model(self, request: HttpRequest, obj: UserImport) -> None:
        super().delete_model(request, obj)
        obj.delete_files()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[UserImport]) -> None:
        imports = list(queryset)
        super().delete_queryset(request, queryset)
        for user_import in imports:
            user_import.delete_files()

    @admin.display(description="file")
    def file_name(self, obj: UserImport) -> str:
        return obj.file_name  # the name only: uploads are not served to the web

    @admin.display(description="progress")
    def progress_display(self, obj: UserImport) -> str:
        return f"{obj.progress} %"

    @admin.display(description="unchanged")
    def unchanged(self, obj: UserImport) -> int:
        return obj.unchanged

    @admin.display(description="report")
    def report_link(self, obj: UserImport) -> str:
        if obj.report:
            return format_html('<a href="{}">Download the {} rejected rows (CSV)</a>',
                               reverse("imports:report", args=[obj.pk]), obj.rejected)
        return "No rejected rows." if obj.status == UserImport.Status.DONE else "-"
