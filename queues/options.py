"""Job options with BullMQ's meaning, validated, merged and turned into RQ arguments.

The same option names work in three places, the later winning: a queue's ``default_job_options``
in ``QUEUES``, the ``@job`` decorator, and one ``Queue.add()`` call. Times are seconds (or
``timedelta``), where BullMQ takes milliseconds.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rq.job import Retry

from .exceptions import InvalidJobOptions

OPTION_NAMES = ("attempts", "backoff", "remove_on_complete", "remove_on_fail", "timeout")
BACKOFF_TYPES = ("fixed", "exponential")


@dataclass(frozen=True)
class Backoff:
    """Wait before retry *n* (1-based): ``delay`` when fixed, ``delay * 2 ** (n - 1)`` when exponential."""

    type: str = "fixed"
    delay: float = 0.0

    def delays(self, retries: int) -> list[float]:
        if self.type == "exponential":
            return [self.delay * 2 ** (n - 1) for n in range(1, retries + 1)]
        return [self.delay] * retries


@dataclass(frozen=True)
class Retention:
    """How many finished jobs to keep (``count``) and for how long (``age`` seconds); None is no limit."""

    count: int | None = None
    age: float | None = None

    @property
    def remove_at_once(self) -> bool:
        return self.count == 0 or self.age == 0

    def ttl(self) -> int:
        """The RQ time-to-live that carries the age limit: 0 removes at once, -1 keeps."""
        if self.remove_at_once:
            return 0
        if self.age is not None:
            return max(1, math.ceil(self.age))
        return -1


KEEP = Retention()


def _fail(where: str, message: str) -> InvalidJobOptions:
    return InvalidJobOptions(f"{where}: {message}")


def _seconds(value: Any, where: str, name: str, *, allow_zero: bool) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"{name} must be a number of seconds or a timedelta, not {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise _fail(where, f"{name} must be {bound} seconds, not {value!r}.")
    return float(value)


def _parse_attempts(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(where, f"attempts is the total number of runs (1 = no retry) and must be a whole number ≥ 1, "
                    f"not {value!r}.")
    return value


def _parse_backoff(value: Any, where: str) -> Backoff:
    if isinstance(value, int | float | timedelta) and not isinstance(value, bool):
        return Backoff("fixed", _seconds(value, where, "backoff", allow_zero=True))
    if not isinstance(value, Mapping):
        raise _fail(where, f"backoff must be seconds or {{'type': 'fixed'|'exponential', 'delay': seconds}}, "
                    f"not {value!r}.")
    unknown = set(value) - {"type", "delay"}
    if unknown:
        raise _fail(where, f"backoff has unknown key(s) {sorted(unknown)}: it takes 'type' and 'delay'.")
    kind = value.get("type", "fixed")
    if kind not in BACKOFF_TYPES:
        raise _fail(where, f"backoff type must be 'fixed' or 'exponential', not {kind!r}.")
    return Backoff(kind, _seconds(value.get("delay", 0), where, "backoff delay", allow_zero=True))


def _parse_retention(value: Any, where: str, name: str) -> Retention:
    if value is True:
        return Retention(count=0)
    if value is False or value is None:
        return KEEP
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _fail(where, f"{name} as a number keeps that many newest jobs and must be ≥ 0, not {value}.")
        return Retention(count=value)
    if isinstance(value, Mapping):
        unknown = set(value) - {"count", "age"}
        if unknown or not value:
            raise _fail(where, f"{name} takes {{'count': N, 'age': seconds}} (either or both), got {dict(value)!r}.")
        count = value.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise _fail(where, f"{name} count must be a whole number ≥ 0, not {count!r}.")
        age = value.get("age")
        return Retention(count=count, age=None if age is None else _seconds(age, where, f"{name} age",
                                                                             allow_zero=True))
    raise _fail(where, f"{name} must be True, False, a count, or {{'count': N, 'age': seconds}}, not {value!r}.")


_PARSERS = {
    "attempts": lambda v, w: _parse_attempts(v, w),
    "backoff": lambda v, w: _parse_backoff(v, w),
    "remove_on_complete": lambda v, w: _parse_retention(v, w, "remove_on_complete"),
    "remove_on_fail": lambda v, w: _parse_retention(v, w, "remove_on_fail"),
    "timeout": lambda v, w: _seconds(v, w, "timeout", allow_zero=False),
}


def check_names(options: Mapping[str, Any], where: str) -> None:
    """Refuse option names this app does not know, suggesting the closest one."""
    for name in options:
        if name not in _PARSERS:
            close = difflib.get_close_matches(str(name), OPTION_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known options: {', '.join(OPTION_NAMES)}."
            raise _fail(where, f"unknown job option {name!r}.{hint}")


@dataclass(frozen=True)
class JobOptions:
    """Resolved options for one job. Build with :meth:`parse` and :meth:`merged`."""

    attempts: int = 1
    backoff: Backoff = Backoff()
    remove_on_complete: Retention = KEEP
    remove_on_fail: Retention = KEEP
    timeout: float | None = None

    @classmethod
    def parse(cls, options: Mapping[str, Any], where: str, base: JobOptions | None = None) -> JobOptions:
        """Validate ``options`` and lay them over ``base`` (or the defaults).

        Raises:
            InvalidJobOptions: an unknown name or a value out of range; the message says which.
        """
        check_names(options, where)
        values = {name: _PARSERS[name](value, where) for name, value in options.items()}
        return (base or cls()).merged(values)

    def merged(self, values: Mapping[str, Any]) -> JobOptions:
        return JobOptions(**{**self.__dict__, **values})

    def rq_kwargs(self) -> dict[str, Any]:
        """The arguments of ``rq.Queue.create_job`` that carry these options."""
        retries = self.attempts - 1
        return {
            "timeout": None if self.timeout is None else math.ceil(self.timeout),
            "result_ttl": self.remove_on_complete.ttl(),
            "failure_ttl": self.remove_on_fail.ttl(),
            # RQ repeats an interval list shorter than `max` from its start: pass exactly `retries` values.
            "retry": Retry(max=retries, interval=self.backoff.delays(retries)) if retries else None,
        }
