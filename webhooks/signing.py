"""Signatures of webhook deliveries: Stripe's scheme, standard library only, so that a receiver can copy
:func:`verify_signature` as it is.

Each delivery carries ``X-Webhook-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is the HMAC-SHA256 of
``"<t>.<raw body>"`` keyed with the endpoint's secret. The timestamp is signed with the body, so a captured request
replayed later than the tolerance is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Webhook-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Webhook-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds; default now)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes | str, tolerance: int = 300) -> bool:
    """Whether ``header`` (the ``X-Webhook-Signature`` value) signs the raw ``body`` with ``secret``, and was made
    within ``tolerance`` seconds of now.

    Pass the body exactly as received, before any JSON parsing. Several ``v1=`` entries are accepted (any one
    matching is enough), as during a change of secret.
    """
    timestamp, signatures = "", []
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if not timestamp.isdigit() or not signatures or abs(time.time() - int(timestamp)) > tolerance:
        return False
    raw = body.encode() if isinstance(body, str) else body
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
