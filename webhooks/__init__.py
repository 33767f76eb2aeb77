"""Webhooks: signed JSON POSTs of the CMS's events to the endpoints that subscribe to them (docs/webhooks.md).

Other apps call ``send_event("notification.sent", {...})`` (here, or from ``webhooks.services``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def send_event(event: str, data: Mapping[str, Any]) -> int:
    """:func:`webhooks.services.send_event`, importable before the app registry is ready."""
    from .services import send_event as send

    return send(event, data)
