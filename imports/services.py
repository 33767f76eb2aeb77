"""Starting an import: the admin's upload calls :func:`start` once the row is saved."""

from __future__ import annotations

from queues import Job, get_queue

from .jobs import QUEUE, import_users
from .models import UserImport


def start(user_import: UserImport) -> Job:
    """Enqueue the import's job with its id only, under its own job id (adding it twice adds one job).

    Inside a transaction (the admin's save) the job is written when it commits, so the worker always finds the
    row; were Redis away then, ``queues`` keeps the job in its database spool and adds it once Redis is back.
    """
    return get_queue(QUEUE).add(import_users, {"import_id": user_import.pk}, job_id=user_import.job_id)
