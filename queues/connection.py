"""One Redis client per process, built on first use from ``QUEUES_REDIS``.

- Never built at import, and rebuilt after ``QUEUES_REDIS`` changes (``override_settings``).
- A forked child (RQ's work horse) gets its own client and sockets: the cache is keyed by pid, and
  redis-py's pool resets itself after a fork as well.
- A lost connection is retried with exponential backoff: a few times in a web process (so a request
  fails fast and the caller can fall back), without limit in a worker (BullMQ's
  ``maxRetriesPerRequest: null``: the worker waits for Redis to come back instead of dying). Each wait
  is at least half its exponential step, so the default 3 web retries wait up to 0.7-1.2 s in all: enough
  for a Redis restart, short enough for a request. A refused password is raised at once, never retried.
- A web process's call takes at most about ``QUEUES_REDIS["TIMEOUT"]`` (default 2 s) in all, even against a
  server that accepts connections and never answers: each attempt may take 40 % of it (connecting, or waiting
  for the reply), and no retry starts after the other 60 %.
- "Redis connected" (at DEBUG: a process opens several) and connection errors (ERROR) are logged with host and
  port, never the password.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import EqualJitterBackoff
from redis.connection import Connection, ConnectionPool, SSLConnection, UnixDomainSocketConnection, parse_url
from redis.retry import Retry
from redis.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from .conf import get_config

logger = logging.getLogger("queues.connection")

WEB = "web"
WORKER = "worker"
EVENTS = "events"
DEFAULT_TIMEOUT = 2.0  # seconds a web process's Redis call may take in all (QUEUES_REDIS["TIMEOUT"])
TIMEOUT_SHARE = 0.4  # of it, what one attempt may take (connect, or wait for a reply); retries start until the rest
SOCKET_CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 30
BACKOFF_BASE = 0.1  # seconds; retry n waits between BACKOFF_BASE * 2**(n-1) and twice that ...
BACKOFF_CAP = 5.0  # ... but never more than this

_clients: dict[tuple[int, str], redis.Redis] = {}
_lock = threading.Lock()


class _LoggedConnectionMixin:
    """Log each new socket and each failed attempt to open one."""

    def where(self) -> str:
        path = getattr(self, "path", None)
        return str(path) if path else f"{getattr(self, 'host', '?')}:{getattr(self, 'port', '?')}"

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_sock", None) is not None:
            return
        try:
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except redis.RedisError as e:
            logger.error("Redis connection error (%s): %s", self.where(), e)
            raise
        logger.debug("Redis connected (%s)", self.where())


class LoggedConnection(_LoggedConnectionMixin, Connection):
    pass


class LoggedSSLConnection(_LoggedConnectionMixin, SSLConnection):
    pass


class LoggedUnixDomainSocketConnection(_LoggedConnectionMixin, UnixDomainSocketConnection):
    pass


class LoggedSentinelManagedConnection(_LoggedConnectionMixin, SentinelManagedConnection):
    pass


class LoggedSentinelManagedSSLConnection(_LoggedConnectionMixin, SentinelManagedSSLConnection):
    pass


_LOGGED = {
    Connection: LoggedConnection,
    SSLConnection: LoggedSSLConnection,
    UnixDomainSocketConnection: LoggedUnixDomainSocketConnection,
}


_deadline = threading.local()  # the end of the outermost retry loop running in this thread


class LostConnectionRetry(Retry):
    """redis-py's ``Retry`` for a lost connection, with a time budget; a refused password is raised at once.

    ``AuthenticationError`` is a ``ConnectionError`` to redis-py, so its retry loop would retry a wrong
    password, and a worker (unlimited retries) would hang for ever instead of failing with the reason.

    ``budget`` (seconds, web processes): no attempt starts later than that after the outermost call began. redis-py
    nests retry loops (a command's, and inside it the health check's PING on an idle connection); they share
    the one deadline, so a Redis that accepts connections and never answers fails a web call in about
    ``QUEUES_REDIS["TIMEOUT"]``, not in the sum of every loop's timeouts.
    """

    def __init__(self, backoff: Any, retries: int, *, budget: float | None = None) -> None:
        super().__init__(backoff, retries)
        self.budget = budget

    def call_with_retry(self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False,  # noqa: FBT001,FBT002
                        ) -> Any:
        until = getattr(_deadline, "until", None)
        outermost = until is None and self.budget is not None
        if outermost:
            until = _deadline.until = time.monotonic() + self.budget  # type: ignore[operator]
        try:
            self._backoff.reset()
            failures = 0
            while True:
                try:
                    return do()
                except redis.AuthenticationError:
                    raise
                except self._supported_errors as error:
                    if is_retryable and not is_retryable(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        fail(error, failures)
                    else:
                        fail(error)
                    if 0 <= self._retries < failures:
                        raise
                    wait = self._backoff.compute(failures)
                    if until is not None and time.monotonic() + wait >= until:
                        raise
                    if wait > 0:
                        time.sleep(wait)
        finally:
            if outermost:
                _deadline.until = None


def connection_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """``ConnectionPool`` keyword arguments for a ``QUEUES_REDIS`` dict (pure: no I/O). With ``SENTINELS``, the
    arguments of the primary's connections, less its address (``SentinelConnectionPool`` asks Sentinel for it)."""
    kwargs: dict[str, Any]
    if config.get("SENTINELS"):
        kwargs = {
            "db": config.get("DB", 0) or 0, "username": config.get("USERNAME"), "password": config.get("PASSWORD"),
            "connection_class": (LoggedSentinelManagedSSLConnection if config.get("SSL")
                                 else LoggedSentinelManagedConnection),
        }
        if config.get("SSL_CA_CERTS"):
            kwargs["ssl_ca_certs"] = config["SSL_CA_CERTS"]
    elif config.get("URL"):
        kwargs = parse_url(config["URL"])
        kwargs.setdefault("connection_class", Connection)
    else:
        kwargs = {
            "host": config.get("HOST", "localhost"),
            "port": config.get("PORT", 6379),
            "db": config.get("DB", 0) or 0,
            "username": config.get("USERNAME"),
            "password": config.get("PASSWORD"),
            "connection_class": SSLConnection if config.get("SSL") else Connection,
        }
    if kwargs["connection_class"] is SSLConnection:
        if config.get("SSL_CA_CERTS"):
            kwargs["ssl_ca_certs"] = config["SSL_CA_CERTS"]
        if config.get("SSL_CERT_REQS"):
            kwargs["ssl_cert_reqs"] = config["SSL_CERT_REQS"]
    kwargs["connection_class"] = _LOGGED.get(kwargs["connection_class"], kwargs["connection_class"])
    kwargs.setdefault("socket_connect_timeout", config.get("SOCKET_CONNECT_TIMEOUT", SOCKET_CONNECT_TIMEOUT))
    if config.get("SOCKET_TIMEOUT") is not None:
        kwargs["socket_timeout"] = config["SOCKET_TIMEOUT"]
    kwargs["socket_keepalive"] = True
    kwargs["health_check_interval"] = HEALTH_CHECK_INTERVAL
    return kwargs


def where(config: Mapping[str, Any]) -> str:
    """Where ``config``'s Redis is, for messages: ``host:port/db``, ``unix:path db N``, or the Sentinels and the
    primary's name; ``(TLS)`` when encrypted; never a user name or password."""
    kwargs = connection_kwargs(config)
    db = kwargs.get("db", 0) or 0
    connection_class = kwargs.get("connection_class")
    tls = isinstance(connection_class, type) and issubclass(connection_class,
                                                            SSLConnection | SentinelManagedSSLConnection)
    if config.get("SENTINELS"):
        sentinels = ",".join(f"{host}:{port}" for host, port in config["SENTINELS"])
        place = f"primary {config.get('SENTINEL_MASTER')!r} of Sentinel {sentinels} db {db}"
    elif isinstance(connection_class, type) and issubclass(connection_class, UnixDomainSocketConnection):
        place = f"unix:{kwargs.get('path', '?')} db {db}"
    else:
        place = f"{kwargs.get('host', '?')}:{kwargs.get('port', 6379)}/{db}"
    return place + (" (TLS)" if tls else "")


def build_client(config: Mapping[str, Any], *, retries: int, max_connections: int | None = None,
                 timeout: float | None = None) -> redis.Redis:
    """A new client for ``config``; ``retries=-1`` retries a lost connection without limit. ``max_connections``:
    the pool's size (redis-py's default is 100: a threads worker blocks one connection per idle thread).
    ``timeout``: the seconds a call may take in all, retries included (see :data:`TIMEOUT_SHARE`)."""
    kwargs = connection_kwargs(config)
    if max_connections is not None:
        kwargs["max_connections"] = max_connections
    budget = None
    if timeout is not None:
        attempt = timeout * TIMEOUT_SHARE
        kwargs["socket_connect_timeout"] = min(kwargs["socket_connect_timeout"], attempt)
        kwargs["socket_timeout"] = min(kwargs.get("socket_timeout") or attempt, attempt)
        budget = timeout - attempt
    kwargs["retry"] = LostConnectionRetry(EqualJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP), retries,
                                          budget=budget)
    if config.get("SENTINELS"):
        sentinel_kwargs = {"socket_timeout": kwargs["socket_connect_timeout"],
                           "socket_connect_timeout": kwargs["socket_connect_timeout"]}
        if config.get("SENTINEL_PASSWORD"):
            sentinel_kwargs["password"] = config["SENTINEL_PASSWORD"]
        sentinel = Sentinel([tuple(item) for item in config["SENTINELS"]], sentinel_kwargs=sentinel_kwargs)
        return redis.Redis(connection_pool=SentinelConnectionPool(config["SENTINEL_MASTER"], sentinel, **kwargs))
    return redis.Redis(connection_pool=ConnectionPool(**kwargs))


def get_connection(role: str = WEB) -> redis.Redis:
    """This process's Redis client for ``role``, built on first use: ``"web"`` (a few retries, every call bounded
    by ``QUEUES_REDIS["TIMEOUT"]``), ``"worker"`` (retries without limit) or ``"events"`` (a web process's event
    listener: blocking reads, so no read timeout)."""
    key = (os.getpid(), role)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                config = get_config().redis
                retries = -1 if role == WORKER else int(config.get("RETRIES", 3))
                timeout = float(config.get("TIMEOUT", DEFAULT_TIMEOUT)) if role == WEB else None
                client = _clients[key] = build_client(config, retries=retries, timeout=timeout)
    return client


def reset_connections() -> None:
    """Forget this process's clients (closing their sockets); the next use builds new ones."""
    with _lock:
        for (pid, _role), client in list(_clients.items()):
            if pid == os.getpid():
                client.close()
                client.connection_pool.disconnect()
        _clients.clear()
