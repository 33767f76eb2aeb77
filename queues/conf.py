"""Read the ``QUEUES*`` settings into validated queue definitions.

Settings are read on first use and again after ``setting_changed`` (so ``override_settings`` works),
never at import. A bad setting does not raise here: it becomes an error that ``manage.py check``
shows (``queues.E0xx``) and that :func:`get_definition` raises as :class:`~queues.exceptions.InvalidQueue`.

This module is imported by the project's settings (for :class:`RQQueues`), so it imports nothing that
needs configured settings or a loaded app registry.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import InvalidJobOptions, InvalidQueue
from .options import JobOptions

QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
QUEUE_KEYS = ("default_job_options", "permanent_errors", "concurrency", "limiter", "stalled_interval",
              "max_stalled_count", "mode", "max_jobs_per_process", "max_memory_per_process")
MODES = ("processes", "threads", "fork")  # how a worker runs a queue's jobs (queues.worker)
DEFAULT_STALLED_INTERVAL = 30.0
DEFAULT_SHUTDOWN_GRACE = 30.0
REDIS_KEYS = (
    "URL", "HOST", "PORT", "DB", "USERNAME", "PASSWORD", "SSL", "SSL_CA_CERTS", "SSL_CERT_REQS",
    "SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT", "RETRIES", "TIMEOUT", "SENTINELS", "SENTINEL_MASTER",
    "SENTINEL_PASSWORD",
)
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
DEFAULT_EVENTS_MAX_LENGTH = 10_000
DEFAULT_METRICS_MINUTES = 24 * 60
DEFAULT_DASHBOARD_REFRESH = 5.0
JSON_SERIALIZER = "rq.serializers.JSONSerializer"
QUEUE_CLASS = "queues.rqqueue.RQQueue"


@dataclass(frozen=True)
class Problem:
    """One misconfiguration, reported by ``manage.py check`` as ``queues.<id>``."""

    id: str
    msg: str
    hint: str


@dataclass(frozen=True)
class QueueDefinition:
    """A queue from ``QUEUES``: its name and the options its jobs start from."""

    name: str
    default_job_options: JobOptions = JobOptions()
    # Dotted paths of exception classes that fail a job at once, attempts left or not.
    permanent_errors: tuple[str, ...] = ()
    concurrency: int = 1  # job processes a worker command runs for this queue
    limiter: Limiter | None = None  # at most `max` job starts in any window of `duration` seconds, all workers
    stalled_interval: float = DEFAULT_STALLED_INTERVAL  # a job whose worker is silent this long has stalled
    max_stalled_count: int = 1  # stalls put back to waiting before the job fails
    mode: str = "processes"  # processes | threads | fork (queues.worker)
    max_jobs_per_process: int | None = None  # processes mode: recycle a worker process after this many jobs
    max_memory_per_process: float | None = None  # processes mode: recycle past this peak memory (MiB)


@dataclass(frozen=True)
class Limiter:
    max: int
    duration: float


@dataclass(frozen=True)
class Config:
    queues: dict[str, QueueDefinition] = field(default_factory=dict)
    redis: dict[str, Any] = field(default_factory=dict)
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    shutdown_grace: float | None = DEFAULT_SHUTDOWN_GRACE
    events_max_length: int = DEFAULT_EVENTS_MAX_LENGTH  # per queue stream, approximate; 0: no events
    metrics_minutes: int = DEFAULT_METRICS_MINUTES  # per-minute counts kept; 0: no metrics
    dashboard_refresh: float = DEFAULT_DASHBOARD_REFRESH  # seconds between the admin dashboard's live refreshes
    problems: tuple[Problem, ...] = ()


def _suggest(name: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(known)}."


def _check_redis(redis: Any) -> list[Problem]:
    if not isinstance(redis, Mapping):
        return [Problem("E005", "QUEUES_REDIS must be a dict.", "Set QUEUES_REDIS = {'URL': 'redis://host:6379/0'}.")]
    problems = []
    for key in redis:
        if key not in REDIS_KEYS:
            problems.append(
                Problem("E005", f"QUEUES_REDIS has an unknown key {key!r}.", _suggest(str(key), REDIS_KEYS)))
    url = redis.get("URL")
    if url is not None:
        scheme = urlsplit(str(url)).scheme
        if scheme not in ("redis", "rediss", "unix"):
            problems.append(Problem("E005", f"QUEUES_REDIS['URL'] has the scheme {scheme or '(none)'!r}.",
                                    "Use redis://, rediss:// (TLS) or unix:// (a socket path)."))
    elif redis.get("SENTINELS"):
        sentinels = redis["SENTINELS"]
        if isinstance(sentinels, str) or not all(
                isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], int) for item in sentinels):
            problems.append(Problem("E005", f"QUEUES_REDIS['SENTINELS'] is {sentinels!r}.",
                                    "Use a list of (host, port) pairs, e.g. [('10.0.0.5', 26379)] (REDIS_SENTINELS)."))
        if not redis.get("SENTINEL_MASTER"):
            problems.append(Problem("E005", "QUEUES_REDIS has SENTINELS but no SENTINEL_MASTER.",
                                    "Name the primary Sentinel watches (REDIS_SENTINEL_MASTER, e.g. 'mymaster')."))
    elif not redis.get("HOST"):
        problems.append(Problem("E005", "QUEUES_REDIS names no server.",
                                "Give it a 'URL', or a 'HOST' and 'PORT' (the project reads REDIS_URL / REDIS_HOST)."))
    port = redis.get("PORT", 6379)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(Problem("E005", f"QUEUES_REDIS['PORT'] is {port!r}.", "Use a TCP port from 1 to 65535."))
    retries = redis.get("RETRIES", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.append(Problem("E005", f"QUEUES_REDIS['RETRIES'] is {retries!r}.",
                                "Use a whole number ≥ 0: how often a web process retries a lost connection."))
    timeout = redis.get("TIMEOUT", 2.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0.1 <= timeout <= 600:
        problems.append(Problem("E005", f"QUEUES_REDIS['TIMEOUT'] is {timeout!r}.",
                                "Use seconds from 0.1 to 600 (default 2): how long a web process waits for Redis in "
                                "all, retries included, before the call fails."))
    return problems


def _read_queue(name: Any, spec: Any) -> tuple[QueueDefinition | None, list[Problem]]:
    where = f"QUEUES[{name!r}]"
    if not isinstance(name, str) or not QUEUE_NAME_RE.match(name):
        return None, [Problem("E002", f"{where}: {name!r} is not a valid queue name.",
                              "Use letters, digits, '_', '-' and '.', starting with a letter or digit (no ':').")]
    if not isinstance(spec, Mapping):
        return None, [Problem("E003", f"{where} must be a dict, not {type(spec).__name__}.",
                              "Use {} for a queue with default options.")]
    problems = [
        Problem("E003", f"{where} has an unknown key {key!r}.", _suggest(str(key), QUEUE_KEYS))
        for key in spec if key not in QUEUE_KEYS
    ]
    options = spec.get("default_job_options", {})
    if not isinstance(options, Mapping):
        problems.append(Problem("E004", f"{where}['default_job_options'] must be a dict.",
                                "e.g. {'attempts': 3, 'backoff': {'type': 'exponential', 'delay': 1}}"))
        return None, problems
    try:
        defaults = JobOptions.parse(options, f"{where}['default_job_options']", shared=True)
    except InvalidJobOptions as e:
        problems.append(Problem("E004", str(e), "Fix the option; docs/bullmq-mapping.md lists every option."))
        return None, problems
    permanent = spec.get("permanent_errors", ())
    if isinstance(permanent, str) or not all(isinstance(path, str) and "." in path for path in permanent):
        problems.append(Problem("E011", f"{where}['permanent_errors'] must be a list of dotted paths of exception "
                                "classes.", "e.g. ['smtplib.SMTPRecipientsRefused']"))
        return None, problems
    for path in permanent:
        try:
            error_class = import_string(path)
        except ImportError as e:
            problems.append(Problem("E011", f"{where}['permanent_errors']: {path!r} cannot be imported ({e}).",
                                    "Give the dotted path of an exception class."))
            continue
        if not (isinstance(error_class, type) and issubclass(error_class, BaseException)):
            problems.append(Problem("E011", f"{where}['permanent_errors']: {path!r} is not an exception class.",
                                    "Give the dotted path of an exception class."))
    controls, found = _read_worker_controls(where, spec)
    problems.extend(found)
    if found:
        return None, problems
    return QueueDefinition(name=name, default_job_options=defaults, permanent_errors=tuple(permanent),
                           **controls), problems


def _positive_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


def _read_worker_controls(where: str, spec: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """``concurrency``, ``limiter``, ``stalled_interval`` and ``max_stalled_count`` of a queue (E012)."""
    controls: dict[str, Any] = {}
    problems = []
    concurrency = spec.get("concurrency", 1)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        problems.append(Problem("E012", f"{where}['concurrency'] is {concurrency!r}.",
                                "Use a whole number from 1 to 256: the job processes a worker command runs for it."))
    else:
        controls["concurrency"] = concurrency
    limiter = spec.get("limiter")
    if limiter is not None:
        if (not isinstance(limiter, Mapping) or set(limiter) != {"max", "duration"}
                or isinstance(limiter["max"], bool) or not isinstance(limiter["max"], int) or limiter["max"] < 1
                or not _positive_number(limiter["duration"])):
            problems.append(Problem("E012", f"{where}['limiter'] is {limiter!r}.",
                                    "Use {'max': N, 'duration': seconds}: at most N job starts in any window of "
                                    "that many seconds (BullMQ's duration is in milliseconds)."))
        else:
            controls["limiter"] = Limiter(limiter["max"], float(limiter["duration"]))
    interval = spec.get("stalled_interval", DEFAULT_STALLED_INTERVAL)
    if not _positive_number(interval) or interval < 1:
        problems.append(Problem("E012", f"{where}['stalled_interval'] is {interval!r}.",
                                "Use seconds, at least 1 (default 30): how soon a job whose worker died is noticed."))
    else:
        controls["stalled_interval"] = float(interval)
    max_stalled = spec.get("max_stalled_count", 1)
    if isinstance(max_stalled, bool) or not isinstance(max_stalled, int) or max_stalled < 0:
        problems.append(Problem("E012", f"{where}['max_stalled_count'] is {max_stalled!r}.",
                                "Use a whole number ≥ 0 (default 1): stalls forgiven before the job fails."))
    else:
        controls["max_stalled_count"] = max_stalled
    mode = spec.get("mode", "processes")
    if mode not in MODES:
        problems.append(Problem("E012", f"{where}['mode'] is {mode!r}.",
                                "Use 'processes' (default: long-lived processes, one job at a time each), "
                                "'threads' (I/O-bound jobs, `concurrency` at once in one process) or 'fork' (a "
                                "process per job)."))
    else:
        controls["mode"] = mode
    max_jobs = spec.get("max_jobs_per_process")
    if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1):
        problems.append(Problem("E012", f"{where}['max_jobs_per_process'] is {max_jobs!r}.",
                                "Use a whole number ≥ 1 (or None): jobs a worker process runs before it is replaced."))
    else:
        controls["max_jobs_per_process"] = max_jobs
    max_memory = spec.get("max_memory_per_process")
    if max_memory is not None and not _positive_number(max_memory):
        problems.append(Problem("E012", f"{where}['max_memory_per_process'] is {max_memory!r}.",
                                "Use MiB > 0 (or None): a worker process whose memory grew past it is replaced "
                                "after its current job."))
    else:
        controls["max_memory_per_process"] = max_memory
    return controls, problems


def load_config() -> Config:
    """Read and validate the settings now; never raises for a bad setting (see ``problems``)."""
    problems: list[Problem] = []
    raw_queues = getattr(settings, "QUEUES", None)
    queues: dict[str, QueueDefinition] = {}
    if not isinstance(raw_queues, Mapping) or not raw_queues:
        problems.append(Problem("E001", "QUEUES must be a non-empty dict of queue name → definition.",
                                "Add QUEUES = {'email': {'default_job_options': {'attempts': 3}}} to settings."))
    else:
        for name, spec in raw_queues.items():
            definition, found = _read_queue(name, spec)
            problems.extend(found)
            if definition is not None:
                queues[name] = definition
    redis = getattr(settings, "QUEUES_REDIS", {"HOST": "localhost", "PORT": 6379})
    problems.extend(_check_redis(redis))
    max_bytes = getattr(settings, "QUEUES_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        problems.append(Problem("E006", f"QUEUES_MAX_PAYLOAD_BYTES is {max_bytes!r}.",
                                "Use a positive whole number of bytes (default 65536)."))
        max_bytes = DEFAULT_MAX_PAYLOAD_BYTES
    grace = getattr(settings, "QUEUES_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE)
    if grace is not None and not (_positive_number(grace) or grace == 0):
        problems.append(Problem("E006", f"QUEUES_SHUTDOWN_GRACE is {grace!r}.",
                                "Use seconds ≥ 0 (default 30) that a stopping worker lets its running job finish, "
                                "or None to wait for ever."))
        grace = DEFAULT_SHUTDOWN_GRACE
    events_max_length = _whole_number_setting(
        "QUEUES_EVENTS_MAX_LENGTH", DEFAULT_EVENTS_MAX_LENGTH, problems,
        "Use a whole number ≥ 0: the events kept per queue (default 10000); 0 publishes no events.")
    metrics_minutes = _whole_number_setting(
        "QUEUES_METRICS_MINUTES", DEFAULT_METRICS_MINUTES, problems,
        "Use a whole number ≥ 0 of minutes of per-minute counts to keep (default 1440, a day); 0 keeps none.")
    refresh = getattr(settings, "QUEUES_DASHBOARD_REFRESH", DEFAULT_DASHBOARD_REFRESH)
    if not _positive_number(refresh):
        problems.append(Problem("E013", f"QUEUES_DASHBOARD_REFRESH is {refresh!r}.",
                                "Use seconds > 0 between the admin dashboard's live refreshes (default 5)."))
        refresh = DEFAULT_DASHBOARD_REFRESH
    return Config(queues=queues, redis=dict(redis) if isinstance(redis, Mapping) else {},
                  max_payload_bytes=max_bytes, shutdown_grace=grace, events_max_length=events_max_length,
                  metrics_minutes=metrics_minutes, dashboard_refresh=float(refresh), problems=tuple(problems))


def _whole_number_setting(name: str, default: int, problems: list[Problem], hint: str) -> int:
    value = getattr(settings, name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.append(Problem("E013", f"{name} is {value!r}.", hint))
        return default
    return value


@cache
def get_config() -> Config:
    """The settings as last read (cached; cleared when a ``QUEUES*`` setting changes)."""
    return load_config()


def clear_cache() -> None:
    get_config.cache_clear()


def get_definition(name: str) -> QueueDefinition:
    """The definition of queue ``name``.

    Raises:
        InvalidQueue: ``QUEUES`` has errors, or does not define ``name``.
    """
    config = get_config()
    if config.problems:
        first = config.problems[0]
        raise InvalidQueue(f"The QUEUES settings have errors (queues.{first.id}: {first.msg}); "
                           "run `manage.py check` to see them all.")
    try:
        return config.queues[name]
    except KeyError:
        defined = ", ".join(config.queues) or "none"
        raise InvalidQueue(f"Queue {name!r} is not defined: add it to QUEUES in settings.py "
                           f"(defined: {defined}).") from None


def django_rq_connection(redis: Mapping[str, Any]) -> dict[str, Any]:
    """``QUEUES_REDIS`` in django-rq's vocabulary, so its admin pages and commands reach the same server."""
    if redis.get("SENTINELS"):
        sentinel = {key: redis[key] for key in ("DB", "USERNAME", "PASSWORD", "SSL") if redis.get(key) is not None}
        return {**sentinel, "SENTINELS": [tuple(item) for item in redis["SENTINELS"]],
                "MASTER_NAME": redis["SENTINEL_MASTER"],
                "SENTINEL_KWARGS": {"password": redis["SENTINEL_PASSWORD"]} if redis.get("SENTINEL_PASSWORD") else {}}
    if "URL" in redis:
        params: dict[str, Any] = {"URL": redis["URL"]}
        if redis.get("SSL_CERT_REQS"):
            params["SSL_CERT_REQS"] = redis["SSL_CERT_REQS"]
        if redis.get("SSL_CA_CERTS"):
            sep = "&" if "?" in redis["URL"] else "?"
            params["URL"] = f"{redis['URL']}{sep}ssl_ca_certs={redis['SSL_CA_CERTS']}"
        return params
    params = {key: redis[key] for key in ("HOST", "PORT", "DB", "USERNAME", "PASSWORD", "SSL", "SSL_CERT_REQS")
              if redis.get(key) is not None}
    params.setdefault("PORT", 6379)
    if redis.get("SSL_CA_CERTS"):
        params["REDIS_CLIENT_KWARGS"] = {"ssl_ca_certs": redis["SSL_CA_CERTS"]}
    return params


class RQQueues(Mapping[str, dict[str, Any]]):
    """django-rq's ``RQ_QUEUES``, derived from ``QUEUES`` and ``QUEUES_REDIS`` at every read.

    Use it as ``RQ_QUEUES = RQQueues()`` so django-rq's ``rqworker``, ``rqstats`` and admin pages
    see exactly the queues this app defines, with the JSON serializer and this app's queue class.
    """

    def _queues(self) -> dict[str, QueueDefinition]:
        return get_config().queues

    def __getitem__(self, name: str) -> dict[str, Any]:
        config = get_config()
        definition = config.queues.get(name)
        if definition is None:
            raise KeyError(f"queue {name!r} is not defined in QUEUES (defined: {', '.join(config.queues)})")
        timeout = definition.default_job_options.timeout
        return {
            **django_rq_connection(config.redis),
            "DEFAULT_TIMEOUT": None if timeout is None else int(timeout),
            # django-rq's API (django_rq.enqueue, queue.enqueue) gives its jobs this result_ttl: the queue's age limit
            "DEFAULT_RESULT_TTL": definition.default_job_options.remove_on_complete.ttl(),
            "SERIALIZER": JSON_SERIALIZER,
            "QUEUE_CLASS": QUEUE_CLASS,
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._queues())

    def __len__(self) -> int:
        return len(self._queues())

    def __repr__(self) -> str:
        return f"RQQueues({', '.join(self._queues())})"
