"""System checks of the exports app's settings (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from .conf import DEFAULT_KEEP_DAYS, keep_days


@checks.register()
def check_keep_days(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``EXPORTS_KEEP_DAYS``: a whole number of days ≥ 1, or None."""
    value = keep_days()
    if value is None or (not isinstance(value, bool) and isinstance(value, int) and value >= 1):
        return []
    return [checks.Error(f"EXPORTS_KEEP_DAYS is {value!r}.",
                         hint=f"Use a whole number of days ≥ 1 (default {DEFAULT_KEEP_DAYS}), or None to keep export "
                              "files until deleted by hand.",
                         id="exports.E001")]
