"""Job options with BullMQ's meaning, validated, merged and turned into RQ arguments.

The same option names work in three places, the later winning: a queue's ``default_job_options``
in ``QUEUES``, the ``@job`` decorator, and one ``Queue.add()`` call. Times are seconds (or
``timedelta``), where BullMQ takes milliseconds.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.utils.module_loading import import_string
from rq.job import Retry

from .exceptions import InvalidJobOptions

logger = logging.getLogger("queues.worker")
_strategies: dict[str, Callable[..., float]] = {}
F = TypeVar("F", bound=Callable[..., Any])

OPTION_NAMES = ("attempts", "backoff", "delay", "job_id", "priority", "remove_on_complete", "remove_on_fail",
                "run_at", "timeout")
PER_JOB_ONLY = ("job_id", "run_at")  # meaningless as a default shared by many jobs
BACKOFF_TYPES = ("fixed", "exponential")
MAX_PRIORITY = 2_097_152  # 2 ** 21, as BullMQ
MAX_ATTEMPTS = 1000  # each job carries its retry waits as a list: a bound keeps its hash small
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # what RQ accepts in a job key, at most 128 characters
KEEP_ORDERED_TTL = 10 * 365 * 24 * 60 * 60  # "keep" when a count limit needs the registry ordered by time


def backoff_strategy(func: F) -> F:
    """Register a module-level function as a backoff strategy: ``backoff={"type": "<its dotted path>", ...}``.

    It is called as ``func(attempts_made, delay, error)`` and returns the seconds to wait before the next attempt.
    Define (or import) it in an app's ``jobs.py`` so every process registers it: a worker calls registered
    strategies only, never a function a job hash in Redis merely names.

    Raises:
        TypeError: the decorated object is not a module-level function.
    """
    if not inspect.isfunction(func) or "<locals>" in func.__qualname__ or "." in func.__qualname__:
        raise TypeError(f"@backoff_strategy takes a module-level function, not {func!r}.")
    _strategies[f"{func.__module__}.{func.__qualname__}"] = func
    return func


def get_backoff_strategy(path: str) -> Callable[..., float] | None:
    """The strategy registered under ``path``, or None (never imported here: see :func:`backoff_strategy`)."""
    return _strategies.get(path)


@dataclass(frozen=True)
class Backoff:
    """The wait before retry *n* (1-based).

    ``fixed``: ``delay``; ``exponential``: ``delay * 2 ** (n - 1)``; any other type is the dotted path of
    a function ``f(attempts_made, delay, error) -> seconds`` registered with ``@backoff_strategy``. ``jitter``
    (0 to 1) takes up to that share off each wait at random, so that jobs failing together do not all retry
    together.
    """

    type: str = "fixed"
    delay: float = 0.0
    jitter: float = 0.0

    def base_delays(self, retries: int) -> list[float]:
        if self.type == "exponential":
            return [self.delay * 2 ** (n - 1) for n in range(1, retries + 1)]
        return [self.delay] * retries

    def wait(self, retry: int, error: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), jitter applied."""
        strategy = None if self.type in BACKOFF_TYPES else get_backoff_strategy(self.type)
        if strategy is not None:
            base = float(strategy(retry, self.delay, error))
        else:
            if self.type not in BACKOFF_TYPES:  # named in Redis, registered nowhere here: never imported or called
                logger.error("backoff strategy %r is not registered in this process (@backoff_strategy in an app's "
                             "jobs.py); waiting its plain delay (%g s) instead", self.type, self.delay)
            base = self.base_delays(retry)[-1]
        if self.jitter:
            base *= 1 - self.jitter * random.random()  # noqa: S311 - spreading retries, not security
        return max(0.0, base)

    def spec(self) -> str:
        """The compact form stored on the job (read back by :meth:`from_spec`)."""
        return f"{self.type}|{self.delay!r}|{self.jitter!r}"

    @classmethod
    def from_spec(cls, spec: str) -> Backoff:
        kind, delay, jitter = spec.rsplit("|", 2)
        return cls(kind, float(delay), float(jitter))


@dataclass(frozen=True)
class Retention:
    """How many finished jobs to keep (``count``) and for how long (``age`` seconds); None is no limit."""

    count: int | None = None
    age: float | None = None

    @property
    def remove_at_once(self) -> bool:
        return self.count == 0 or self.age == 0

    def ttl(self) -> int:
        """The RQ time-to-live that carries the age limit: 0 removes at once, -1 keeps.

        With a count limit and no age, a long TTL instead of -1: RQ scores its registries by expiry
        (-1 for all kept jobs), and trimming to the newest N needs them in order of completion.
        """
        if self.remove_at_once:
            return 0
        if self.age is not None:
            return max(1, math.ceil(self.age))
        return KEEP_ORDERED_TTL if self.count is not None else -1

    def spec(self) -> str:
        """The count limit as stored on the job ("" for none)."""
        return "" if self.count is None or self.remove_at_once else str(self.count)


KEEP = Retention()
# When neither the queue, the @job nor add() says: bounded, so a busy queue never grows Redis without end (BullMQ
# keeps every job by default; `False` still does). Failed jobs are what an operator acts on: kept longer.
DEFAULT_KEEP_COMPLETED = Retention(count=1000, age=7 * 24 * 60 * 60)
DEFAULT_KEEP_FAILED = Retention(count=10_000, age=30 * 24 * 60 * 60)


def _fail(where: str, message: str) -> InvalidJobOptions:
    return InvalidJobOptions(f"{where}: {message}")


def _seconds(value: Any, where: str, name: str, *, allow_zero: bool) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    # abs() <= the largest float: not NaN, not infinite, and no int too large for float() (an OverflowError)
    if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) <= sys.float_info.max:
        raise _fail(where, f"{name} must be a number of seconds or a timedelta, not {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise _fail(where, f"{name} must be {bound} seconds, not {value!r}.")
    return float(value)


def _parse_attempts(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
        raise _fail(where, f"attempts is the total number of runs (1 = no retry) and must be a whole number from 1 "
                    f"to {MAX_ATTEMPTS:,}, not {value!r}.")
    return value


def _parse_backoff(value: Any, where: str) -> Backoff:
    if isinstance(value, int | float | timedelta) and not isinstance(value, bool):
        return Backoff("fixed", _seconds(value, where, "backoff", allow_zero=True))
    if not isinstance(value, Mapping):
        raise _fail(where, f"backoff must be seconds or {{'type': 'fixed'|'exponential', 'delay': seconds}}, "
                    f"not {value!r}.")
    unknown = set(value) - {"type", "delay", "jitter"}
    if unknown:
        raise _fail(where, f"backoff has unknown key(s) {sorted(unknown, key=repr)}: it takes 'type', 'delay' and "
                    "'jitter'.")
    kind = value.get("type", "fixed")
    if not isinstance(kind, str) or (kind not in BACKOFF_TYPES and "." not in kind):
        raise _fail(where, f"backoff type must be 'fixed' or 'exponential' (or the dotted path of a function), "
                    f"not {kind!r}.")
    if kind not in BACKOFF_TYPES and get_backoff_strategy(kind) is None:
        try:
            import_string(kind)
        except (ImportError, TypeError, ValueError) as e:  # ".x": "Empty module name"; "..x": a relative import
            raise _fail(where, f"backoff type {kind!r} cannot be imported ({e}).") from None
        if get_backoff_strategy(kind) is None:
            raise _fail(where, f"backoff type {kind!r} is not a registered backoff strategy: decorate it with "
                        "@backoff_strategy (from queues) in a module every process imports (an app's jobs.py).")
    jitter = value.get("jitter", 0)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
        raise _fail(where, f"backoff jitter is the share of each wait taken off at random, from 0 to 1, "
                    f"not {jitter!r}.")
    return Backoff(kind, _seconds(value.get("delay", 0), where, "backoff delay", allow_zero=True), float(jitter))


def _parse_priority(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise _fail(where, f"priority must be a whole number from 1 (first) to {MAX_PRIORITY:,} (0 or None: no "
                    f"priority, which runs before any prioritized job), not {value!r}.")
    return value


def _parse_job_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not JOB_ID_RE.fullmatch(value):  # match() lets "$" take a final "\n"
        raise _fail(where, f"job_id must be 1 to 128 letters, digits, '-' or '_' (e.g. 'welcome-42'), "
                    f"not {value!r}.")
    return value


def _parse_run_at(value: Any, where: str) -> float:
    if not isinstance(value, datetime):
        raise _fail(where, f"run_at must be a datetime, not {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(where, "run_at must be an aware datetime: use django.utils.timezone.now() + timedelta(...) "
                    "or datetime(..., tzinfo=...).")
    return value.timestamp()


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


def _parse(name: str, value: Any, where: str) -> Any:
    try:
        return _PARSERS[name](value, where)
    except InvalidJobOptions:
        raise
    except ValueError:  # a value Python cannot even show (an int past its 4,300 digits) for the message
        raise _fail(where, f"{name} has a value too large to read ({type(value).__name__}).") from None


_PARSERS = {
    "attempts": lambda v, w: _parse_attempts(v, w),
    "backoff": lambda v, w: _parse_backoff(v, w),
    "remove_on_complete": lambda v, w: _parse_retention(v, w, "remove_on_complete"),
    "remove_on_fail": lambda v, w: _parse_retention(v, w, "remove_on_fail"),
    "timeout": lambda v, w: _seconds(v, w, "timeout", allow_zero=False),
    "delay": lambda v, w: _seconds(v, w, "delay", allow_zero=True),
    "run_at": lambda v, w: _parse_run_at(v, w),
    "priority": lambda v, w: None if v is None else _parse_priority(v, w),
    "job_id": lambda v, w: None if v is None else _parse_job_id(v, w),
}


def check_names(options: Mapping[str, Any], where: str, *, shared: bool = False) -> None:
    """Refuse option names this app does not know, suggesting the closest one.

    ``shared``: the options are defaults for many jobs (a queue's or a decorator's), where ``job_id``
    and ``run_at`` make no sense.
    """
    for name in options:
        if shared and name in PER_JOB_ONLY:
            raise _fail(where, f"{name} belongs to one job: pass it to add(), not as a default.")
        if name not in _PARSERS:
            close = difflib.get_close_matches(str(name), OPTION_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known options: {', '.join(OPTION_NAMES)}."
            raise _fail(where, f"unknown job option {name!r}.{hint}")


@dataclass(frozen=True)
class JobOptions:
    """Resolved options for one job. Build with :meth:`parse` and :meth:`merged`."""

    attempts: int = 1
    backoff: Backoff = Backoff()
    remove_on_complete: Retention = DEFAULT_KEEP_COMPLETED
    remove_on_fail: Retention = DEFAULT_KEEP_FAILED
    timeout: float | None = None
    delay: float = 0.0
    run_at: float | None = None  # a POSIX timestamp; wins over delay
    priority: int | None = None
    job_id: str | None = None

    @classmethod
    def parse(cls, options: Mapping[str, Any], where: str, base: JobOptions | None = None, *,
              shared: bool = False) -> JobOptions:
        """Validate ``options`` and lay them over ``base`` (or the defaults).

        Raises:
            InvalidJobOptions: an unknown name or a value out of range; the message says which.
        """
        check_names(options, where, shared=shared)
        values = {name: _parse(name, value, where) for name, value in options.items()}
        return (base or cls()).merged(values)

    def due(self, now: float | None = None) -> float | None:
        """When the job may start (POSIX seconds), or None for now. A time in the past is now."""
        now = time.time() if now is None else now
        at = self.run_at if self.run_at is not None else (now + self.delay if self.delay else None)
        return at if at is not None and at > now else None

    def merged(self, values: Mapping[str, Any]) -> JobOptions:
        return JobOptions(**{**self.__dict__, **values})

    def rq_kwargs(self) -> dict[str, Any]:
        """The arguments of ``rq.Queue.create_job`` that carry these options."""
        retries = self.attempts - 1
        return {
            "job_id": self.job_id,
            "timeout": None if self.timeout is None else math.ceil(self.timeout),
            "result_ttl": self.remove_on_complete.ttl(),
            "failure_ttl": self.remove_on_fail.ttl(),
            # RQ repeats an interval list shorter than `max` from its start: pass exactly `retries` values.
            # The wait actually used is computed at each failure (RQJob.get_retry_interval), with jitter.
            "retry": Retry(max=retries, interval=self.backoff.base_delays(retries))  # type: ignore[arg-type]
            if retries else None,  # RQ's annotation says ints; it stores and returns floats as given
        }
