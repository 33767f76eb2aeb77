"""One Redis client per process, built on first use from ``QUEUES_REDIS``.

- Never built at import, and rebuilt after ``QUEUES_REDIS`` changes (``override_settings``).
- A forked child (RQ's work horse) gets its own client and sockets: the cache is keyed by pid, and
  redis-py's pool resets itself after a fork as well.
- A lost connection is retried with exponential backoff: a few times in a web process (so a request
  fails fast and the caller can fall back), without limit in a worker (BullMQ's
  ``maxRetriesPerRequest: null``: the worker waits for Redis to come back instead of dying). Each wait
  is at least half its exponential step, so the default 3 web retries wait 0.7-1.4 s in all: enough for
  a Redis restart, short enough for a request. A refused password is raised at once, never retried.
- "Redis connected" and connection errors are logged with host and port, never the password.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import EqualJitterBackoff
from redis.connection import Connection, ConnectionPool, SSLConnection, UnixDomainSocketConnection, parse_url
from redis.retry import Retry

from .conf import get_config

logger = logging.getLogger("queues.connection")

WEB = "web"
WORKER = "worker"
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
        logger.info("Redis connected (%s)", self.where())


class LoggedConnection(_LoggedConnectionMixin, Connection):
    pass


class LoggedSSLConnection(_LoggedConnectionMixin, SSLConnection):
    pass


class LoggedUnixDomainSocketConnection(_LoggedConnectionMixin, UnixDomainSocketConnection):
    pass


_LOGGED = {
    Connection: LoggedConnection,
    SSLConnection: LoggedSSLConnection,
    UnixDomainSocketConnection: LoggedUnixDomainSocketConnection,
}


class _Refused(Exception):
    """Carries an error out of redis-py's retry loop, which would otherwise retry it."""

    def __init__(self, error: redis.AuthenticationError) -> None:
        super().__init__(error)
        self.error = error


class LostConnectionRetry(Retry):
    """redis-py's ``Retry`` for a lost connection; a refused password is raised at once.

    ``AuthenticationError`` is a ``ConnectionError`` to redis-py, so its retry loop would retry a wrong
    password, and a worker (unlimited retries) would hang for ever instead of failing with the reason.
    """

    def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        def attempt() -> Any:
            try:
                return do()
            except redis.AuthenticationError as e:
                raise _Refused(e) from e

        try:
            return super().call_with_retry(attempt, fail, *args, **kwargs)
        except _Refused as refused:
            raise refused.error from None


def connection_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """``ConnectionPool`` keyword arguments for a ``QUEUES_REDIS`` dict (pure: no I/O)."""
    if config.get("URL"):
        kwargs: dict[str, Any] = parse_url(config["URL"])
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


def build_client(config: Mapping[str, Any], *, retries: int, max_connections: int | None = None) -> redis.Redis:
    """A new client for ``config``; ``retries=-1`` retries a lost connection without limit. ``max_connections``:
    the pool's size (redis-py's default is 100: a threads worker blocks one connection per idle thread)."""
    kwargs = connection_kwargs(config)
    if max_connections is not None:
        kwargs["max_connections"] = max_connections
    kwargs["retry"] = LostConnectionRetry(EqualJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP), retries)
    return redis.Redis(connection_pool=ConnectionPool(**kwargs))


def get_connection(role: str = WEB) -> redis.Redis:
    """This process's Redis client for ``role`` (``"web"`` or ``"worker"``), built on first use."""
    key = (os.getpid(), role)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                config = get_config().redis
                retries = -1 if role == WORKER else int(config.get("RETRIES", 3))
                client = _clients[key] = build_client(config, retries=retries)
    return client


def reset_connections() -> None:
    """Forget this process's clients (closing their sockets); the next use builds new ones."""
    with _lock:
        for (pid, _role), client in list(_clients.items()):
            if pid == os.getpid():
                client.close()
                client.connection_pool.disconnect()
        _clients.clear()
