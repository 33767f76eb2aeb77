"""Delete an export's file with its row (the admin's delete, a user deleted with ``CASCADE``, a shell)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Export


@receiver(post_delete, sender=Export, dispatch_uid="exports.delete_file")
def delete_file(sender: type[Export], instance: Export, **kwargs: Any) -> None:
    """Remove the file once the deletion commits: a rolled-back delete keeps both."""
    if instance.file:
        storage, name = instance.file.storage, instance.file.name
        transaction.on_commit(lambda: storage.delete(name))
