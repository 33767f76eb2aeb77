"""What the model, the admin and other apps call: ask for an image's thumbnails, clean files up.

``request_thumbnails`` marks the row pending under a job id and adds the job (``{"image_id": id}``) inside
``transaction.atomic()``, so the job reaches Redis when the transaction commits: a worker never sees a job
before its row, and a rollback adds none. Should Redis be down at the commit, ``queues`` keeps the job in the
database and a worker adds it when Redis is back (README, "Adding jobs").
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from django.core.files.storage import Storage
from django.db import transaction
from django.utils import timezone

from queues import Job, get_queue

from .models import Image, Status

logger = logging.getLogger(__name__)

QUEUE = "media"


def file_version(image: Image) -> str:
    """The job-id prefix of the image's current file: ``image-<pk>-<12 hex>``.

    The hex digest is of the file name and the row's creation time: a database that reuses a deleted row's pk
    for a new row with a file of the same name does not meet the old row's jobs in Redis.
    """
    version = f"{image.created_at.isoformat() if image.created_at else ''}|{image.file.name}"
    return f"image-{image.pk}-{hashlib.sha256(version.encode()).hexdigest()[:12]}"


def request_thumbnails(image: Image) -> Job:
    """Mark ``image`` pending and add its thumbnails job, written to Redis when the transaction commits.

    The job id is ``<file version>-<n>`` (:func:`file_version`; ``n`` counts the row's requests). Asking again
    for the same file while its job has not started returns that job (no double work); once it started or
    ended, a new request (a regeneration, a storage that overwrites files in place) gets the next ``n``. The
    row's ``job_id`` names the job that owns it; an older job ends as superseded.

    Raises:
        ValueError: the image is not saved, no longer exists, or has no file.
    """
    if image.pk is None or not image.file:
        raise ValueError("Save the image with a file before asking for its thumbnails.")
    version = file_version(image)
    with transaction.atomic():
        row = (Image.objects.select_for_update().filter(pk=image.pk)
               .values("job_id", "status", "thumbnail_requests").first())
        if row is None:
            raise ValueError(f"Image {image.pk} does not exist.")
        if row["status"] == Status.PENDING and row["job_id"].startswith(f"{version}-"):
            job_id, requests = row["job_id"], row["thumbnail_requests"]  # its job will read the file as it is now
        else:
            requests = row["thumbnail_requests"] + 1
            job_id = f"{version}-{requests}"
        Image.objects.filter(pk=image.pk).update(status=Status.PENDING, error="", job_id=job_id,
                                                 thumbnail_requests=requests, updated_at=timezone.now())
        from .jobs import thumbnails

        handle = get_queue(QUEUE).add(thumbnails, {"image_id": image.pk}, job_id=job_id)
    image.status, image.error, image.job_id, image.thumbnail_requests = Status.PENDING, "", job_id, requests
    return handle


def delete_files_on_commit(storage: Storage, names: Iterable[str]) -> None:
    """Delete files from ``storage`` once the transaction commits (none on a rollback: the row still names them)."""
    names = [name for name in names if name]
    if names:
        transaction.on_commit(lambda: delete_files(storage, names))


def delete_files(storage: Storage, names: Iterable[str]) -> None:
    """Delete files from ``storage``; one that cannot be deleted is logged and left (an orphan, not an error)."""
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.exception("Could not delete %s from storage; it is left behind.", name)
