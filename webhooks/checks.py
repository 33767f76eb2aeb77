"""System checks of the webhooks app's settings (``manage.py check``): their shape only, never the network."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import checks

from .conf import DEFAULT_MAX_RETRY_AFTER, DEFAULT_TIMEOUT, parse_timeout

QUEUE = "webhooks"


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``WEBHOOKS_TIMEOUT``, ``WEBHOOKS_MAX_RETRY_AFTER`` and ``WEBHOOKS_ALLOW_PRIVATE_TARGETS``."""
    errors: list[checks.CheckMessage] = []
    try:
        timeout = parse_timeout(getattr(settings, "WEBHOOKS_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError as e:
        errors.append(checks.Error(str(e), hint="e.g. WEBHOOKS_TIMEOUT = (3, 10)", id="webhooks.E001"))
    else:
        job_timeout = _job_timeout()
        if job_timeout is not None and timeout.connect + timeout.read >= job_timeout:
            errors.append(checks.Warning(
                f"WEBHOOKS_TIMEOUT allows {timeout.connect + timeout.read:g} s per request, but the {QUEUE!r} "
                f"queue stops a job after {job_timeout:g} s: a slow receiver fails the job without a Delivery row.",
                hint=f"Lower WEBHOOKS_TIMEOUT or raise QUEUES[{QUEUE!r}]['default_job_options']['timeout'].",
                id="webhooks.W001"))
    retry_after = getattr(settings, "WEBHOOKS_MAX_RETRY_AFTER", DEFAULT_MAX_RETRY_AFTER)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or not 0 < retry_after < 1e9:
        errors.append(checks.Error(f"WEBHOOKS_MAX_RETRY_AFTER is {retry_after!r}.",
                                   hint="Use a number of seconds > 0 (default 3600).", id="webhooks.E002"))
    allow = getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)
    if not isinstance(allow, bool):
        errors.append(checks.Error(f"WEBHOOKS_ALLOW_PRIVATE_TARGETS is {allow!r}.",
                                   hint="Use True or False (default False: internal addresses are refused).",
                                   id="webhooks.E003"))
    return errors


def _job_timeout() -> float | None:
    """The webhooks queue's job timeout in seconds, when the settings give one."""
    spec = getattr(settings, "QUEUES", {}).get(QUEUE) or {}
    value = (spec.get("default_job_options") or {}).get("timeout")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
