"""The thumbnails job (queue "media"). It takes the image's id, never the row, and reads the row again.

- Only the job named by the row's ``job_id`` works on it: a job left behind by a newer upload or a
  regeneration ends as superseded (completed with ``{"skipped": ...}``, not failed).
- A file that is not an image, declares more than ``IMAGES_MAX_PIXELS`` pixels, is broken or is missing
  fails the row with the reason (``not an image: ...``, ``image too large: ...``) and raises
  ``queues.UnrecoverableError``: no retry, the file will not change. Its old thumbnails are deleted: they
  showed a file the row no longer has.
- Any other error (storage unreachable, out of memory) puts the row back to ``pending`` with the error while
  the queue has attempts left (media: 2, exponential backoff from 5 s), ``failed`` on the last, and re-raises.
- Success stores the new thumbnails and the original's upright width and height, marks the row ``done``, then
  deletes the previous thumbnails. Should the row change while the job worked (new file, deleted), its files
  are deleted instead.

Progress (BullMQ's ``job.updateProgress``): ``100 × sizes done / sizes`` after each size.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from queues import UnrecoverableError, current_job, job

from . import conf, render
from .models import Image, Status
from .services import QUEUE, delete_files

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000


@job(QUEUE, name="images.thumbnails")
def thumbnails(image_id: int) -> dict[str, Any]:
    """Make the thumbnails of image ``image_id`` (see the module docstring)."""
    running = current_job()
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        return _skipped(image_id, "the image was deleted")
    if running is not None and image.job_id != running.id:
        return _skipped(image_id, f"superseded by job {image.job_id or '(none)'}")
    # This row as the job read it: every write below is conditional on it, so a row that got a new file or a
    # new job meanwhile is left to that job.
    mine = Image.objects.filter(pk=image_id, job_id=image.job_id, file=image.file.name)
    if not image.file:
        _fail(mine, image, "no file: the image has no original to make thumbnails of")
    if not mine.update(status=Status.PROCESSING, updated_at=timezone.now()):
        return _skipped(image_id, "it changed before the job started")

    sizes, max_pixels = conf.thumbnail_sizes(), conf.max_pixels()
    storage = image.file.storage

    def progress(done: int, total: int) -> None:
        if running is not None:
            running.update_progress(round(100 * done / total))

    try:
        made = render.make_thumbnails(storage, image.file.name, str(image.pk), sizes, max_pixels, progress)
    except render.ImageRejected as e:
        _fail(mine, image, str(e), e)
    except FileNotFoundError as e:
        _fail(mine, image, f"file missing: {image.file.name} is not in storage", e)
    except Exception as e:
        last = running is None or not running.retries_left
        mine.update(status=Status.FAILED if last else Status.PENDING, error=_error_text(e),
                    updated_at=timezone.now())
        logger.warning("Image %s: thumbnails failed (job %s, attempt %s%s): %s", image_id,
                       running.id if running else "-", running.attempts_made + 1 if running else 1,
                       ", the last" if last else ", will retry", _error_text(e))
        raise

    if not mine.update(status=Status.DONE, error="", thumbnails=made.paths, width=made.width,
                       height=made.height, updated_at=timezone.now()):
        delete_files(storage, made.paths.values())
        return _skipped(image_id, "it changed while the thumbnails were made")
    delete_files(storage, [path for path in image.thumbnails.values() if path not in made.paths.values()])
    logger.info("Image %s: %d thumbnails made (job %s)", image_id, len(made.paths), running.id if running else "-")
    return {"image_id": image_id, "thumbnails": made.paths, "width": made.width, "height": made.height}


def _fail(mine: QuerySet[Image], image: Image, reason: str, cause: BaseException | None = None) -> None:
    """Fail the row for good with ``reason``, delete its old thumbnails, and raise UnrecoverableError."""
    reason = reason[:MAX_ERROR_LENGTH]
    if mine.update(status=Status.FAILED, error=reason, thumbnails={}, width=None, height=None,
                   updated_at=timezone.now()):
        delete_files(image.file.storage, image.thumbnails.values())
    raise UnrecoverableError(f"Image {image.pk}: {reason}") from cause


def _skipped(image_id: int, reason: str) -> dict[str, Any]:
    logger.info("Image %s: thumbnails not made: %s", image_id, reason)
    return {"image_id": image_id, "skipped": reason}


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
