"""Jobs of the exports app: ``exports.run`` makes an export's CSV file, ``exports.cleanup`` expires old files.

``exports.run`` (queue "exports") takes ``export_id`` only and reads everything else from the row. Each run starts
over: it claims the row (pending, running or failed → running, counters reset), writes the CSV to a temporary file,
saves it to the default storage and marks the row done with its file in one UPDATE. So a retry, a rerun after a
killed worker, or a failed job retried from the dashboard each make the whole file again, and a row is never done
without its complete file. A failed run puts the row back to pending with ``error`` while the queue has attempts
left (exports: 2 attempts, 10 s apart), and to failed on the last one. A model or field that no longer exists
fails the row at once (``UnrecoverableError``).

Progress (the job's ``update_progress`` and the row's ``progress``): after every chunk of 2,000 rows, 100 when done.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from typing import Any

from django.core.files import File
from django.utils import timezone

from queues import Job, UnrecoverableError, current_job, job

from .conf import keep_days
from .csvfile import ExportDefinitionError, export_fields, export_model, write_csv
from .models import Export, Status

logger = logging.getLogger(__name__)

EXPORTS_QUEUE = "exports"
CLEANUP_QUEUE = "cleanup"
CLAIMABLE = (Status.PENDING, Status.RUNNING, Status.FAILED)  # running: a run that died (killed worker) restarts
MAX_ERROR_LENGTH = 2000
CLEANUP_BATCH = 500


@job(EXPORTS_QUEUE, name="exports.run")
def run_export(export_id: int) -> dict[str, Any]:
    """Write export ``export_id``'s CSV file (see the module docstring)."""
    running = current_job()
    export = Export.objects.filter(pk=export_id).first()
    if export is None:
        return _skipped(export_id, "the export was deleted")
    if not Export.objects.move(export_id, CLAIMABLE, Status.RUNNING, progress=0, row_count=0, error="",
                               finished_at=None):
        return _skipped(export_id, f"it is {export.status}")
    try:
        model = export_model(export.model_label)
        fields = export_fields(model, export.fields)
    except ExportDefinitionError as e:
        _fail(export_id, e, last=True)
        raise UnrecoverableError(f"Export {export_id} cannot be made: {_error_text(e)}") from e
    try:
        return _write(export, model, fields, running)
    except Exception as e:
        last = running is None or not running.retries_left
        _fail(export_id, e, last=last)
        logger.warning("Export %s failed (job %s, %s): %s", export_id, running.id if running else "-",
                       "the last attempt" if last else "will retry", _error_text(e))
        raise


def _write(export: Export, model: Any, fields: list, running: Job | None) -> dict[str, Any]:
    total = len(export.pks)

    def report(written: int) -> None:
        percent = min(99, written * 100 // total) if total else 99  # 100 once the file is saved
        Export.objects.filter(pk=export.pk, status=Status.RUNNING).update(progress=percent)
        if running is not None:
            running.update_progress(percent)

    with tempfile.TemporaryFile() as out:
        written = write_csv(out, model, fields, export.pks, on_progress=report)
        out.seek(0)
        export.file.save(f"{model._meta.model_name}-export-{export.pk}.csv", File(out), save=False)
    done = Export.objects.move(export.pk, [Status.RUNNING], Status.DONE, file=export.file.name, row_count=written,
                               progress=100, finished_at=timezone.now())
    if not done:  # deleted (or claimed by another run) meanwhile: this file belongs to no row
        export.file.storage.delete(export.file.name)
        return _skipped(export.pk, "its row changed while the file was written")
    if running is not None:
        running.update_progress(100)
    logger.info("Export %s done: %d %s rows", export.pk, written, export.model_label)
    return {"export_id": export.pk, "rows": written}


@job(CLEANUP_QUEUE, name="exports.cleanup")
def cleanup() -> dict[str, Any]:
    """Delete the files of exports finished more than ``EXPORTS_KEEP_DAYS`` days ago (default 7; None keeps them)
    and mark those rows expired (selection cleared, who exported what and when kept). Run daily by a job scheduler.

    The file goes first, then the row: a run stopped in between leaves a done row whose download answers 404, and
    the next run finishes it.
    """
    days = keep_days()
    if days is None:
        return {"expired": 0}
    cutoff = timezone.now() - timedelta(days=days)
    storage = Export._meta.get_field("file").storage
    old = Export.objects.filter(status=Status.DONE, finished_at__lt=cutoff).order_by("pk")
    expired, after = 0, 0
    while batch := list(old.filter(pk__gt=after).values_list("pk", "file")[:CLEANUP_BATCH]):
        for pk, name in batch:
            if name:
                storage.delete(name)
            expired += Export.objects.move(pk, [Status.DONE], Status.EXPIRED, file="", pks=[])
        after = batch[-1][0]
    logger.info("exports cleanup: %d export files older than %s days deleted", expired, days)
    return {"expired": expired}


def _skipped(export_id: int, reason: str) -> dict[str, Any]:
    logger.info("Export %s not made: %s", export_id, reason)
    return {"export_id": export_id, "skipped": reason}


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]


def _fail(export_id: int, error: BaseException, *, last: bool) -> None:
    Export.objects.move(export_id, [Status.RUNNING], Status.FAILED if last else Status.PENDING,
                        error=_error_text(error), finished_at=timezone.now() if last else None)
