"""The admin's handle on the queues: a model with no table, for the "Queues" entry and its permissions.

Queues live in Redis, not in the database. This unmanaged model only gives the admin index its entry (the
dashboard, ``queues/admin.py``) and the two permissions that guard it:

- ``queues.view_queue``: see the dashboard and the queue pages;
- ``queues.manage``: pause, resume, retry, clean and drain queues from them.
"""

from django.db import models


class Queue(models.Model):
    """No rows: the dashboard lists the queues of the ``QUEUES`` setting, read from Redis."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [("manage", "Can pause, resume, retry, clean and drain queues")]
        verbose_name = "queue"
        verbose_name_plural = "queues"

    def __str__(self) -> str:
        return "queue"
