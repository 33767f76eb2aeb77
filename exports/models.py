"""One CSV export of a selection of rows, from the admin action to the file its creator downloads.

Status moves one way::

    pending ──▶ running ──▶ done ──▶ expired  (exports.cleanup, EXPORTS_KEEP_DAYS after it finished)
       ▲           │
       └───────────┤ (a failed run with attempts left: back to pending, ``error`` set; the retry starts over)
                   └──▶ failed  (the last attempt failed, or an error no retry can fix)

The row holds everything the job needs (the model, the selected primary keys, the fields): the job's data is the
export's id only, and the selection is the same on every run and retry, whatever happened to the filters since.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


class ExportQuerySet(models.QuerySet["Export"]):
    def move(self, pk: int, from_: Iterable[str], to: str, **fields: Any) -> bool:
        """Set row ``pk`` to status ``to`` (and ``fields``) only if its status is one of ``from_``; one UPDATE, so
        of two racing callers (a run and the cleanup, say) one wins. Returns whether this one did."""
        return bool(self.filter(pk=pk, status__in=list(from_)).update(status=to, **fields))


class Export(models.Model):
    """A CSV file of the rows ``pks`` of ``model_label``, columns ``fields``, made by a job of the exports queue."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports")
    model_label = models.CharField(max_length=100, help_text='The exported model, as "app_label.model_name".')
    pks = models.JSONField(default=list, blank=True,
                           help_text="The selected rows' primary keys, in the order they were listed "
                                     "(cleared when the export expires).")
    fields = models.JSONField(default=list, help_text="The exported fields' names, in column order.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent of the rows written (0-100).")
    row_count = models.PositiveIntegerField(default=0, help_text="Rows written (selected rows deleted since "
                                                                 "are left out).")
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True, max_length=255)
    error = models.TextField(blank=True)
    job_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ExportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["created_by", "-created_at"], name="export_owner_created_idx"),
            # The cleanup: finished exports whose file is still there.
            models.Index(fields=["finished_at"], condition=models.Q(status="done"), name="export_done_idx"),
        ]

    def __str__(self) -> str:
        return f"Export #{self.pk} of {self.model_label} ({self.status})"

    def job_key(self) -> str:
        """The id of the export's job: one job per export, however often it is enqueued."""
        return f"export-{self.pk}"
