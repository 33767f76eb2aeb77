"""The guard on job data: small JSON only, checked before anything is written to Redis.

BullMQ's advice ("pass IDs, fetch data in the worker") made a rule: a model instance, a queryset, a
``datetime`` or anything else JSON cannot carry is refused with a message that says what to pass
instead, and so is data over ``QUEUES_MAX_PAYLOAD_BYTES``, nested over :data:`MAX_DEPTH` levels, or holding an
int outside the signed 64-bit range.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Model, QuerySet

from .exceptions import InvalidJobData, PayloadTooLarge

MAX_DEPTH = 100  # levels of dicts and lists, the job data's own dict included
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # a BigIntegerField's range (JavaScript reads ints exactly to ±2**53 only)

_SCALARS = (str, int, float, bool, type(None))
_PLAIN = frozenset({str, bool, type(None)})  # exactly these types need no look (a float may be NaN, an int huge)
_PATH_SHOWN = 80  # characters of a too-deep value's path in the message


def _hint(value: Any) -> str:
    if isinstance(value, Model):
        name = type(value).__name__
        return (f"is a {name} model instance: pass its primary key instead (e.g. {{'{name.lower()}_id': obj.pk}}) "
                "and fetch the row in the job")
    if isinstance(value, QuerySet):
        return ("is a QuerySet: pass a list of primary keys instead "
                "(list(qs.values_list('pk', flat=True))) and query again in the job")
    if isinstance(value, datetime | date | time):
        return f"is a {type(value).__name__}: pass value.isoformat() and parse it in the job"
    if isinstance(value, timedelta):
        return "is a timedelta: pass value.total_seconds()"
    if isinstance(value, Decimal | UUID):
        return f"is a {type(value).__name__}: pass str(value)"
    if isinstance(value, set | frozenset | tuple):
        return f"is a {type(value).__name__}: pass a list"
    if isinstance(value, bytes | bytearray | memoryview):
        return "is bytes: store the content (a file, a model field) and pass its id or path"
    if isinstance(value, float):
        return "is not a finite number: JSON has no NaN or infinity"
    return f"is a {type(value).__module__}.{type(value).__qualname__}, which JSON cannot carry: pass plain data or ids"


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except ValueError:  # an int past Python's 4,300-digit str() limit, or a tuple holding one
        return f"<{type(value).__name__} too large to show>"


def _lone_surrogate(value: Any, path: str) -> str | None:
    """Where ``value`` holds text that UTF-8 cannot encode (a lone surrogate), as a message says it; else None."""
    if isinstance(value, str):
        return None if _encodes(value) else f"{path} is text holding a lone surrogate"
    if isinstance(value, dict):
        for key, item in value.items():
            if not _encodes(key):
                return f"{path} has the key {key!r}, text holding a lone surrogate"
            if (found := _lone_surrogate(item, f"{path}[{key!r}]")) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _lone_surrogate(item, f"{path}[{index}]")) is not None:
                return found
    return None


def _encodes(text: str) -> bool:
    try:
        str.encode(text)  # not text.encode(): a str subclass may override it
    except UnicodeEncodeError:
        return False
    return True


def _walk(value: Any, path: str, seen: set[int], depth: int) -> None:
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidJobData(f"job data {path} {_hint(value)}.")
        if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            raise InvalidJobData(
                f"job data {path} is an integer of {value.bit_length():,} bits, outside the signed 64-bit range "
                f"({INT_MIN:,} to {INT_MAX:,}) that databases and JSON readers outside Python hold: pass str(value) "
                "and int() it in the job."
            )
        return
    if depth > MAX_DEPTH and isinstance(value, dict | list):
        shown = path if len(path) <= _PATH_SHOWN else path[:_PATH_SHOWN] + "…"
        raise InvalidJobData(
            f"job data nests lists and dicts more than {MAX_DEPTH} levels deep at {shown}: flatten it, or keep it "
            "in the database or a file and pass its id."
        )
    if isinstance(value, dict):
        if id(value) in seen:
            raise InvalidJobData(f"job data {path} refers back to itself (a circular reference): pass plain data.")
        seen.add(id(value))
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidJobData(f"job data {path} has the key {_repr(key)}: JSON object keys must be strings.")
            kind = type(item)  # most data is flat: no path built, no call, for a plain value
            if kind not in _PLAIN and (kind is not int or not INT_MIN <= item <= INT_MAX):
                _walk(item, f"{path}[{key!r}]", seen, depth + 1)
        seen.discard(id(value))
        return
    if isinstance(value, list):
        if id(value) in seen:
            raise InvalidJobData(f"job data {path} refers back to itself (a circular reference): pass plain data.")
        seen.add(id(value))
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", seen, depth + 1)
        seen.discard(id(value))
        return
    raise InvalidJobData(f"job data {path} {_hint(value)}.")


def check_payload(data: Any, max_bytes: int) -> int:
    """Check that ``data`` is a dict of JSON values no larger than ``max_bytes``; return its size.

    Raises:
        InvalidJobData: ``data`` holds something JSON cannot carry (or an int outside 64 bits), or nests over
            :data:`MAX_DEPTH` levels; the message names where and what to pass.
        PayloadTooLarge: the JSON is over ``max_bytes``.
    """
    return len(encode_payload(data, max_bytes).encode())


def encode_payload(data: Any, max_bytes: int) -> str:
    """``data`` as compact JSON, once :func:`check_payload`'s rules hold (it raises as that does)."""
    if not isinstance(data, Mapping) or not isinstance(data, dict):
        raise InvalidJobData(
            f"job data must be a dict of keyword arguments for the job function, not {type(data).__name__}."
        )
    _walk(data, "data", set(), 1)
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        size = len(encoded) if encoded.isascii() else len(encoded.encode())
    except UnicodeEncodeError:  # found only now: a scan of every str would slow the common case
        raise InvalidJobData(
            f"job data {_lone_surrogate(data, 'data')} (as decoding with errors='surrogateescape' leaves), which "
            "UTF-8, and so Redis, cannot carry: clean it, e.g. text.encode(errors='replace').decode()."
        ) from None
    if size > max_bytes:
        raise PayloadTooLarge(
            f"job data is {size:,} bytes as JSON, over the {max_bytes:,}-byte limit (QUEUES_MAX_PAYLOAD_BYTES): "
            "keep large content in the database or a file and pass its id."
        )
    return encoded
