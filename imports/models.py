"""A user import: the uploaded CSV, where its job is, what it did, and the report of the rows it rejected."""

from __future__ import annotations

import posixpath

from django.conf import settings
from django.db import models


class UserImport(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"   # uploaded, its job waits (or waits for a retry)
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"     # the file could not be read, or the last attempt failed: see ``error``

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   related_name="user_imports")
    file = models.FileField(upload_to="imports/%Y/%m/", max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100, from the bytes of the file read.")
    total = models.PositiveIntegerField(default=0, help_text="Data rows read (blank rows are skipped).")
    created = models.PositiveIntegerField(default=0, help_text="Users created.")
    updated = models.PositiveIntegerField(default=0, help_text="Users whose username or names changed.")
    rejected = models.PositiveIntegerField(default=0, help_text="Rows rejected; listed in the report.")
    report = models.FileField(upload_to="imports/reports/%Y/%m/", max_length=255, blank=True,
                              help_text="CSV of the rejected rows: line, values, reason.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")
        verbose_name = "user import"
        indexes = [models.Index(fields=["created_by", "-created_at"], name="imports_by_creator")]

    def __str__(self) -> str:
        return f"Import {self.pk}: {self.file_name}"

    @property
    def file_name(self) -> str:
        return posixpath.basename(self.file.name or "")

    @property
    def unchanged(self) -> int:
        """Rows that matched a user whose values were already those of the file."""
        return max(self.total - self.created - self.updated - self.rejected, 0)

    @property
    def job_id(self) -> str:
        """The id of its job in the ``imports`` queue (one per import: adding it again returns the same job)."""
        return f"user-import-{self.pk}"

    def delete_files(self) -> None:
        """Remove the upload and the report from storage (the row's delete does not)."""
        for field in (self.file, self.report):
            if field.name:
                field.storage.delete(field.name)
