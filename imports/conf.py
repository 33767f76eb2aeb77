"""The imports app's settings, read in one place and at call time (``override_settings`` reaches them)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Largest upload the admin accepts, in bytes.
    "IMPORTS_MAX_BYTES": 50 * 1024 * 1024,
    # Rows per transaction (and per progress update) in the import job.
    "IMPORTS_BATCH_SIZE": 500,
}


def get(name: str) -> Any:
    """The setting ``name`` (one of :data:`DEFAULTS`), or its default."""
    return getattr(settings, name, DEFAULTS[name])


def max_bytes() -> int:
    return get("IMPORTS_MAX_BYTES")


def batch_size() -> int:
    return get("IMPORTS_BATCH_SIZE")
