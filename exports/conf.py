"""The exports app's settings, read in one place, at call time (so ``override_settings`` reaches them)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULT_KEEP_DAYS = 7


def keep_days() -> Any:
    """``EXPORTS_KEEP_DAYS``: days a finished export's file is kept before ``exports.cleanup`` deletes it (None: for
    ever). Checked by ``manage.py check`` (exports.E001)."""
    return getattr(settings, "EXPORTS_KEEP_DAYS", DEFAULT_KEEP_DAYS)
