"""``export_to_csv_action()``: an admin action any ModelAdmin can list to export the selected rows to CSV.

    from exports.actions import export_to_csv_action

    class BookAdmin(admin.ModelAdmin):
        actions = [export_to_csv_action(fields=["id", "title", "author", "published"])]

The action stores the selection's primary keys (in the list's order) in an ``Export`` row, enqueues ``exports.run``
with the export's id on commit, and tells the user where to follow it. It needs the view permission on the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from queues import get_queue

from .csvfile import ExportDefinitionError, export_fields
from .jobs import EXPORTS_QUEUE, run_export
from .models import Export

ACTION_NAME = "export_to_csv"


def export_to_csv_action(fields: Sequence[str] | None = None,
                         description: str = "Export to CSV") -> Callable[[Any, HttpRequest, QuerySet], None]:
    """An admin action (named ``export_to_csv``) exporting the selected rows' ``fields`` (default: every concrete
    field) to a CSV file made in the background.

    Field names are checked when the action runs, before anything is stored: a bad name is an error message, not a
    failed job.
    """
    names = list(fields) if fields is not None else []

    @admin.action(description=description, permissions=["view"])
    def export_to_csv(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            export = start_export(request.user, queryset, names)
        except ExportDefinitionError as e:
            modeladmin.message_user(request, str(e), messages.ERROR)
            return
        url = reverse("admin:exports_export_change", args=[export.pk])
        modeladmin.message_user(request, format_html(
            'Exporting {} {} to CSV: <a href="{}">export #{}</a> (the download link appears there when it is done).',
            len(export.pks), queryset.model._meta.verbose_name_plural, url, export.pk), messages.SUCCESS)

    export_to_csv.__name__ = ACTION_NAME
    return export_to_csv


def start_export(user: Any, queryset: QuerySet, fields: Sequence[str] = ()) -> Export:
    """Create the export of ``queryset``'s rows, columns ``fields`` (default: every concrete field), and enqueue its
    job (data: the export's id) when the row commits.

    If Redis is down at the commit, ``queues`` keeps the job in its database spool and adds it when Redis is back.

    Raises:
        ExportDefinitionError: a name in ``fields`` is not an exportable field of the model.
    """
    names = [field.name for field in export_fields(queryset.model, fields or None)]
    pks = [pk if isinstance(pk, int) else str(pk) for pk in queryset.values_list("pk", flat=True)]
    with transaction.atomic():
        export = Export.objects.create(created_by=user, model_label=queryset.model._meta.label_lower, pks=pks,
                                       fields=names)
        export.job_id = export.job_key()
        Export.objects.filter(pk=export.pk).update(job_id=export.job_id)
        get_queue(EXPORTS_QUEUE).add(run_export, {"export_id": export.pk}, job_id=export.job_id)
    return export
