"""Strict readers for the environment variables the settings take.

django-environ reads ``.env`` and database URLs well, but its ``bool`` turns any unknown word into
``False`` and its ``int`` fails with a message that does not name the variable. Every reader here
raises :class:`EnvError` with one line that names the variable and what it accepts, so a bad value
stops start-up instead of being silently replaced. Secret values are never echoed back.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
REDIS_URL_SCHEMES = ("redis", "rediss", "unix")


class EnvError(ImproperlyConfigured):
    """An environment variable holds a value the settings cannot use."""


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, *, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise EnvError(f"{name}={value!r} is not a boolean: use true or false (1/0, yes/no and on/off also work).")


def env_int(name: str, *, default: int, minimum: int, maximum: int, what: str = "a whole number") -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not minimum <= number <= maximum:
        raise EnvError(f"{name}={value!r} is not {what}: use a whole number from {minimum} to {maximum}.")
    return number


def env_token(name: str, *, min_length: int) -> str:
    """A secret token from ``name``, or ``""`` when unset or empty.

    Raises:
        EnvError: the token is shorter than ``min_length`` or holds a space (the value is not echoed).
    """
    value = _raw(name)
    if value is None:
        return ""
    if len(value) < min_length or any(char.isspace() or not char.isprintable() for char in value):
        raise EnvError(f"{name} must be at least {min_length} characters with no spaces: generate one with "
                       "python -c 'import secrets; print(secrets.token_hex(32))'.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def _host_port(item: str, name: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EnvError(f"{name} takes host:port[,host:port...] (e.g. 10.0.0.5:26379,10.0.0.6:26379), not {item!r}.")
    return host.strip("[]"), int(port)


def redis_from_env() -> dict[str, Any]:
    """Build the ``QUEUES_REDIS`` setting from ``REDIS_*`` variables.

    ``REDIS_URL`` (``redis://``, ``rediss://`` or ``unix://``) wins when set. Otherwise
    ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB``, ``REDIS_USERNAME``, ``REDIS_PASSWORD`` and
    ``REDIS_TLS`` describe the server. ``REDIS_TLS_CA_CERTS`` names a CA bundle for servers whose
    certificate is not signed by a public authority. ``REDIS_SENTINELS`` (``host:port,...``) with
    ``REDIS_SENTINEL_MASTER`` (default ``mymaster``) and ``REDIS_SENTINEL_PASSWORD`` asks Sentinel for the
    primary instead of ``REDIS_HOST``/``REDIS_PORT`` (``REDIS_DB``, ``REDIS_PASSWORD``, ``REDIS_TLS`` still apply).

    Raises:
        EnvError: a variable holds a value that cannot work.
    """
    config: dict[str, Any] = {}
    ca_certs = env_str("REDIS_TLS_CA_CERTS")
    url = env_str("REDIS_URL")
    sentinels = env_str("REDIS_SENTINELS")
    if sentinels:
        if url:
            raise EnvError("REDIS_SENTINELS and REDIS_URL are both set: Sentinel names the primary; unset REDIS_URL.")
        config["SENTINELS"] = [_host_port(item, "REDIS_SENTINELS") for item in sentinels.split(",") if item.strip()]
        config["SENTINEL_MASTER"] = env_str("REDIS_SENTINEL_MASTER") or "mymaster"
        config["SENTINEL_PASSWORD"] = env_str("REDIS_SENTINEL_PASSWORD") or None
    if url:
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError on a port that is not a number
        except ValueError:
            raise EnvError(
                "REDIS_URL is not a valid URL: use redis://[:password@]host:port/db, rediss://… or unix:///path."
            ) from None
        if parts.scheme not in REDIS_URL_SCHEMES:
            raise EnvError(
                f"REDIS_URL must start with redis://, rediss:// or unix:// (it starts with {parts.scheme or '?'}://)."
            )
        config["URL"] = url
        tls = parts.scheme == "rediss"
    else:
        config["HOST"] = env_str("REDIS_HOST", "localhost")
        config["PORT"] = env_int("REDIS_PORT", default=6379, minimum=1, maximum=65535, what="a TCP port")
        config["DB"] = env_int("REDIS_DB", default=0, minimum=0, maximum=15, what="a Redis database number")
        config["USERNAME"] = env_str("REDIS_USERNAME") or None
        config["PASSWORD"] = env_str("REDIS_PASSWORD") or None
        tls = env_bool("REDIS_TLS", default=False)
        config["SSL"] = tls
    if ca_certs:
        if not tls:
            raise EnvError("REDIS_TLS_CA_CERTS is set but TLS is off: set REDIS_TLS=true or use a rediss:// URL.")
        if not os.path.isfile(ca_certs):
            raise EnvError(f"REDIS_TLS_CA_CERTS={ca_certs!r} is not a file: point it at a PEM CA bundle.")
        config["SSL_CA_CERTS"] = ca_certs
    return config
