"""The images admin: upload (the form refuses files Pillow cannot read), see the thumbnails, their status and
error, and the action "Regenerate thumbnails" (change permission).

Saving an upload goes through ``Image.save()``, which asks for thumbnails when the file is new or replaced;
the admin adds nothing of its own but the uploader. The list shows the smallest thumbnail of each row; the change
page shows every size and the job's state (one Redis call, on that page only).
"""

from __future__ import annotations

from typing import Any

import redis
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from queues import get_queue

from . import conf, services
from .models import Image, Status

LIST_PREVIEW_HEIGHT = 60
CHANGE_PREVIEW_HEIGHT = 150


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("preview", "title", "status", "width", "height", "uploaded_by", "created_at")
    list_display_links = ("preview", "title")
    list_filter = ("status",)
    search_fields = ("title", "=job_id")
    list_select_related = ("uploaded_by",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ("regenerate_thumbnails",)
    fields = ("title", "file", "uploaded_by", "status", "error", "previews", "width", "height", "job_state",
              "created_at", "updated_at")
    readonly_fields = ("uploaded_by", "status", "error", "previews", "width", "height", "job_state", "created_at",
                       "updated_at")

    def save_model(self, request: HttpRequest, obj: Image, form: Any, change: bool) -> None:  # noqa: FBT001 - Django's signature
        if not change and obj.uploaded_by_id is None:
            obj.uploaded_by_id = request.user.pk
        super().save_model(request, obj, form, change)

    @admin.display(description="thumbnail")
    def preview(self, image: Image) -> str:
        """The smallest thumbnail, or a dash while there is none."""
        if not image.thumbnails:
            return "-"
        sizes = conf.thumbnail_sizes()
        smallest = min(image.thumbnails, key=lambda name: sizes[name][0] * sizes[name][1] if name in sizes else 0)
        return _img(image, image.thumbnails[smallest], LIST_PREVIEW_HEIGHT)

    @admin.display(description="thumbnails")
    def previews(self, image: Image) -> str:
        """Every thumbnail with its size name."""
        if not image.thumbnails:
            return "-"
        return format_html_join(
            " ", '<figure style="display:inline-block;margin:0 1em 0 0">{}<figcaption>{}</figcaption></figure>',
            ((_img(image, path, CHANGE_PREVIEW_HEIGHT), name) for name, path in image.thumbnails.items()),
        )

    @admin.display(description="job state")
    def job_state(self, image: Image) -> str:
        """The queue's state of the row's thumbnails job, and its progress while it runs."""
        if not image.job_id:
            return "-"
        try:
            handle = get_queue(services.QUEUE).get_job(image.job_id)
            if handle is None:
                return f"{image.job_id}: not in Redis (never enqueued yet, or removed after it finished)"
            state = handle.get_state()
            progress = handle.progress if state == "active" else None
        except (redis.ConnectionError, redis.TimeoutError):
            return f"{image.job_id}: unknown (Redis is unreachable)"
        return f"{image.job_id}: {state}" + (f", {progress} %" if progress is not None else "")

    @admin.action(description="Regenerate thumbnails of the selected images", permissions=["change"])
    def regenerate_thumbnails(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        requested = waiting = 0
        for image in queryset.exclude(file=""):
            was_pending = image.status == Status.PENDING
            services.request_thumbnails(image)
            waiting += was_pending
            requested += not was_pending
        if requested:
            self.message_user(request, f"Thumbnails of {requested} image(s) will be made again.", messages.SUCCESS)
        if waiting:
            self.message_user(request, f"{waiting} image(s) were waiting for their thumbnails already.",
                              messages.INFO)


def _img(image: Image, path: str, height: int) -> str:
    return format_html('<img src="{}" alt="{}" style="max-height:{}px" loading="lazy">',
                       image.file.storage.url(path), image.title, height)

