"""A deleted image takes its files with it: the original and its thumbnails, once the deletion commits.

A ``post_delete`` receiver rather than ``Image.delete()``: the admin's bulk delete and ``QuerySet.delete()``
never call the model's ``delete()``, but send the signal for every row.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Image
from .services import delete_files_on_commit


@receiver(post_delete, sender=Image, dispatch_uid="images.delete_files")
def delete_image_files(sender: type[Image], instance: Image, **kwargs: Any) -> None:
    """Delete the row's original and thumbnails from storage after the commit (never on a rollback)."""
    delete_files_on_commit(instance.file.storage, [instance.file.name, *instance.thumbnails.values()])
