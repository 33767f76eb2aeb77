"""The job of the imports app: ``imports.users`` (queue ``imports``) runs one :class:`UserImport` by id.

Statuses: ``pending`` → ``running`` → ``done``, or ``failed`` with ``error``:

- a file the import cannot read (gone from storage, header lacking a column, not UTF-8, malformed CSV) fails the
  import and the job at once (``UnrecoverableError``: no retry would change it);
- any other error (the database or the storage away) puts the import back to ``pending`` with the error while the
  queue has attempts left (``imports``: 2, 30 s apart), and fails it on the last one. A retry, like a rerun after
  a killed worker, starts the file over: rows the failed run wrote match their users again and count as
  unchanged, so the counts of that run show only what it changed itself.

An import already done or failed is not run again (the job completes with ``{"skipped": ...}``). The return
value holds counts only, no personal data (it is kept in Redis).
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from queues import UnrecoverableError, current_job, job

from .csvfile import InvalidFile
from .importer import import_file
from .models import UserImport

logger = logging.getLogger(__name__)

QUEUE = "imports"
MAX_ERROR_LENGTH = 2000
Status = UserImport.Status


@job(QUEUE, name="imports.users")
def import_users(import_id: int) -> dict[str, Any]:
    """Import the users of the CSV of :class:`UserImport` ``import_id`` (see the module docstring)."""
    running = current_job()
    claimed = UserImport.objects.filter(pk=import_id, status__in=[Status.PENDING, Status.RUNNING]).update(
        status=Status.RUNNING, progress=0, total=0, created=0, updated=0, rejected=0, error="", finished_at=None)
    if not claimed:
        state = UserImport.objects.filter(pk=import_id).values_list("status", flat=True).first()
        reason = f"it is {state}" if state else "the import was deleted"
        logger.info("User import %s not run: %s", import_id, reason)
        return {"import_id": import_id, "skipped": reason}
    user_import = UserImport.objects.select_related("created_by").get(pk=import_id)

    def progress(percent: int) -> None:
        if running is not None:
            running.update_progress(percent)

    try:
        counts = import_file(user_import, progress)
    except (InvalidFile, FileNotFoundError) as e:
        reason = str(e) if isinstance(e, InvalidFile) else f"The uploaded file is gone from storage: {e}"
        _end(import_id, Status.FAILED, reason)
        raise UnrecoverableError(f"User import {import_id}: {reason}") from e
    except Exception as e:
        last = running is None or not running.retries_left
        _end(import_id, Status.FAILED if last else Status.PENDING, f"{type(e).__name__}: {e}")
        logger.warning("User import %s failed (job %s, %s): %s: %s", import_id, running.id if running else "-",
                       "the last attempt" if last else "will retry", type(e).__name__, e)
        raise
    _end(import_id, Status.DONE, "")
    if running is not None:
        running.update_progress(100)
    logger.info("User import %s done: %s rows, %s created, %s updated, %s rejected", import_id, counts.total,
                counts.created, counts.updated, counts.rejected)
    return {"import_id": import_id, "total": counts.total, "created": counts.created, "updated": counts.updated,
            "rejected": counts.rejected}


def _end(import_id: int, status: str, error: str) -> None:
    changes: dict[str, Any] = {"status": status, "error": error[:MAX_ERROR_LENGTH]}
    if status == Status.DONE:
        changes["progress"] = 100
    if status in (Status.DONE, Status.FAILED):
        changes["finished_at"] = timezone.now()
    UserImport.objects.filter(pk=import_id).update(**changes)
