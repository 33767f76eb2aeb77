"""System checks of the imports app's settings (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from . import conf

MAX_BATCH_SIZE = 10_000


def _whole(value: Any, low: int, high: int | None = None) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int) and value >= low
            and (high is None or value <= high))


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``IMPORTS_MAX_BYTES`` (bytes ≥ 1) and ``IMPORTS_BATCH_SIZE`` (rows, 1 to 10,000)."""
    errors: list[checks.CheckMessage] = []
    max_bytes = conf.max_bytes()
    if not _whole(max_bytes, 1):
        errors.append(checks.Error(f"IMPORTS_MAX_BYTES is {max_bytes!r}.",
                                   hint="Use a whole number of bytes ≥ 1 (default 52428800, 50 MB).",
                                   id="imports.E001"))
    batch = conf.batch_size()
    if not _whole(batch, 1, MAX_BATCH_SIZE):
        errors.append(checks.Error(f"IMPORTS_BATCH_SIZE is {batch!r}.",
                                   hint=f"Use a whole number of rows from 1 to {MAX_BATCH_SIZE:,} (default 500).",
                                   id="imports.E002"))
    return errors
