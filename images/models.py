"""An uploaded image and the thumbnails a worker makes of it.

Status::

    pending ──▶ processing ──▶ done
       ▲            │  └─────▶ failed   (not an image, too large, or the last attempt failed)
       └────────────┘ (a failed attempt with attempts left: back to pending, ``error`` set)

Saving a row whose file is new or replaced asks for thumbnails (``services.request_thumbnails``) whatever the
code path (the admin, a view, a shell, an import), after the transaction commits. The web process never decodes
the file: the thumbnails job does, and it checks the file is an image of a sane size first.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction

_UNKNOWN = object()  # the file's saved name when the row was loaded with the field deferred


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Image(models.Model):
    """An original image file and its thumbnails (``{"<size name>": "<storage path>"}``)."""

    title = models.CharField(max_length=200)
    # ImageField, not FileField: its form field (the admin's) refuses files Pillow cannot read and offers only
    # images to pick. No width_field / height_field: they would decode the file in the web process on every
    # save; the job fills ``width`` and ``height``. Files saved from code skip the form, so the job checks again.
    file = models.ImageField(upload_to="images/%Y/%m/", max_length=255)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, editable=False)
    error = models.TextField(blank=True, editable=False)
    thumbnails = models.JSONField(default=dict, blank=True, editable=False)
    width = models.PositiveIntegerField(null=True, blank=True, editable=False)
    height = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # The job that owns the row: a job left behind by a newer upload or a regeneration ends as superseded.
    job_id = models.CharField(max_length=128, blank=True, editable=False)
    thumbnail_requests = models.PositiveIntegerField(default=0, editable=False)  # numbers the job ids
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return self.title or f"Image {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the row; when its file is new or replaced, ask for thumbnails once the transaction commits."""
        update_fields = kwargs.get("update_fields")
        changed = (update_fields is None or "file" in update_fields) and self.file_changed()
        old_name = getattr(self, "_saved_file_name", None)
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            self._saved_file_name = self.file.name
            if changed:
                from . import services

                services.request_thumbnails(self)
                if isinstance(old_name, str) and old_name and old_name != self.file.name:
                    services.delete_files_on_commit(self.file.storage, [old_name])

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Image:
        instance = super().from_db(db, field_names, values)
        instance._saved_file_name = instance.__dict__.get("file", _UNKNOWN)  # the raw name, before the descriptor
        return instance

    def file_changed(self) -> bool:
        """Whether saving now stores a new original: content not yet in storage, or another file name."""
        if not self.file:
            return False
        if not self.file._committed:  # an upload or File assigned: the field's pre_save stores it
            return True
        saved = getattr(self, "_saved_file_name", None)
        return saved is not _UNKNOWN and self.file.name != saved
