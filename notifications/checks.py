"""System checks of the notifications app's settings (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register()
def check_keep_days(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``NOTIFICATIONS_KEEP_DAYS``: days the daily cleanup keeps ended notifications (None: for ever)."""
    value = getattr(settings, "NOTIFICATIONS_KEEP_DAYS", 90)
    if value is None or (not isinstance(value, bool) and isinstance(value, int) and value >= 1):
        return []
    return [checks.Error(f"NOTIFICATIONS_KEEP_DAYS is {value!r}.",
                         hint="Use a whole number of days ≥ 1 (default 90), or None to keep ended notifications.",
                         id="notifications.E001")]
