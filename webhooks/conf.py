"""The webhooks app's settings, read here only, at call time (``override_settings`` reaches them all).

- ``WEBHOOKS_TIMEOUT``: seconds to connect and to read the answer, as ``(connect, read)``, ``{"connect": c,
  "read": r}`` or one number for both (default ``(3, 10)``). A whole request is also bounded by their sum.
- ``WEBHOOKS_MAX_RETRY_AFTER``: the longest ``Retry-After`` of a 429 that is honoured, in seconds (default 3600);
  a longer one waits this long.
- ``WEBHOOKS_KEEP_DAYS``: days events and their ``Delivery`` rows are kept; ``webhooks.cleanup`` (daily, the
  ``webhooks-cleanup`` job scheduler) deletes older ones (default 30).
- ``WEBHOOKS_ALLOW_PRIVATE_TARGETS``: True lets endpoints point at loopback, private and other internal addresses
  (tests, a private network of trusted receivers). Default False: such URLs are refused when saved and when sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

DEFAULT_TIMEOUT = (3.0, 10.0)
DEFAULT_MAX_RETRY_AFTER = 3600.0
DEFAULT_KEEP_DAYS = 30


@dataclass(frozen=True)
class Timeout:
    connect: float
    read: float


def parse_timeout(value: Any) -> Timeout:
    """``WEBHOOKS_TIMEOUT`` in any of its forms as a :class:`Timeout`.

    Raises:
        ValueError: not a positive number, a pair of them, or a dict with "connect" and "read".
    """
    if isinstance(value, Mapping) and set(value) == {"connect", "read"}:
        pair = (value["connect"], value["read"])
    elif isinstance(value, list | tuple) and len(value) == 2:
        pair = tuple(value)
    else:
        pair = (value, value)
    if not all(_positive_number(part) for part in pair):
        raise ValueError(f"WEBHOOKS_TIMEOUT is {value!r}: use seconds > 0 as (connect, read), e.g. (3, 10), "
                         "or {'connect': 3, 'read': 10}, or one number for both.")
    return Timeout(float(pair[0]), float(pair[1]))


def timeout() -> Timeout:
    return parse_timeout(getattr(settings, "WEBHOOKS_TIMEOUT", DEFAULT_TIMEOUT))


def max_retry_after() -> float:
    value = getattr(settings, "WEBHOOKS_MAX_RETRY_AFTER", DEFAULT_MAX_RETRY_AFTER)
    return float(value) if _positive_number(value) else DEFAULT_MAX_RETRY_AFTER


def keep_days() -> int:
    value = getattr(settings, "WEBHOOKS_KEEP_DAYS", DEFAULT_KEEP_DAYS)
    return value if _positive_number(value) and isinstance(value, int) else DEFAULT_KEEP_DAYS


def allow_private_targets() -> bool:
    return getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_TARGETS", False) is True


def _positive_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value < float("inf")
