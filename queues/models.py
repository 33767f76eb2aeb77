"""The app's models: the admin's handle on the queues, and the spool of jobs Redis could not take at commit.

Queues live in Redis, not in the database. The unmanaged ``Queue`` model only gives the admin index its entry (the
dashboard, ``queues/admin.py``) and the two permissions that guard it:

- ``queues.view_queue``: see the dashboard and the queue pages;
- ``queues.manage``: pause, resume, retry, clean and drain queues from them.

``SpooledJob`` holds a job added inside ``transaction.atomic()`` whose write to Redis failed when the transaction
committed (Redis down): workers add it once Redis is back (``queues.spool``).
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


class SpooledJob(models.Model):
    """A checked job waiting for Redis: the add script's arguments, ready to be sent again (same job id)."""

    queue = models.CharField(max_length=100)
    job_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200)
    mode = models.CharField(max_length=1, help_text="w waiting, p prioritized, d delayed")
    score = models.FloatField(help_text="The priority, or the due time (POSIX seconds).")
    fields = models.BinaryField(help_text="The job hash's fields, MessagePack.")
    error = models.TextField(blank=True, help_text="Why Redis did not take it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        default_permissions = ()
        verbose_name = "spooled job"

    def __str__(self) -> str:
        return f"spooled job {self.job_id} ({self.name}, queue {self.queue})"
