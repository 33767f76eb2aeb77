# Copied from django-rq (https://github.com/rq/django-rq), tests/redis_config.py at commit 9915b336ae2ec6b825c84670b24bbc9f38fb5ff8
# (branch master, 2026-05-15; the mirror has no v4.2.0 tag, this is the commit nearest the installed 4.2.0).
# django-rq is MIT-licensed, Copyright (c) 2012 Selwin Ong: see tests_django_rq/LICENSE.
# Adapted for this project: REDIS_HOST / REDIS_PORT come from the session's private server (see below).
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError


@dataclass(frozen=True)
class RedisConfig:
    host: str
    port: int
    db: int


def _find_empty_databases(host: str, port: int, *, required: int) -> Sequence[int]:
    """
    Find a set of empty Redis databases that can be used for tests.

    Raises RuntimeError if we cannot connect or if we cannot find the requested
    number of empty databases. Sentinel ports are intentionally not probed.
    """

    empty_databases: list[int] = []

    for db in range(16):
        try:
            if Redis(host=host, port=port, db=db).dbsize() == 0:
                empty_databases.append(db)
                if len(empty_databases) == required:
                    break
        except RedisError as exc:  # pragma: no cover - defensive guard
            raise RuntimeError(
                f"Refusing to run tests: unable to inspect Redis database {db} on {host}:{port}"
            ) from exc

    if len(empty_databases) < required:
        raise RuntimeError(
            f"Refusing to run tests: need {required} empty Redis databases on {host}:{port}, "
            f"but only found {len(empty_databases)}."
        )

    return empty_databases


# Adapted: the server is the private one the session started (tests_django_rq/redis_session.py), never the
# machine's Redis at localhost:6379. Without DJANGO_RQ_SUITE_REDIS_PORT this module refuses to load.
REDIS_HOST = '127.0.0.1'
_port = os.environ.get('DJANGO_RQ_SUITE_REDIS_PORT', '')
if not _port.isdigit() or int(_port) == 6379:
    raise RuntimeError(
        "Refusing to run django-rq's tests: DJANGO_RQ_SUITE_REDIS_PORT names no private Redis server "
        f"({_port!r}). Run them with pytest from /work/main (tests_django_rq/pytest.ini starts one)."
    )
REDIS_PORT = int(_port)
databases = _find_empty_databases(REDIS_HOST, REDIS_PORT, required=3)

REDIS_CONFIG_1 = RedisConfig(
    host=REDIS_HOST,
    port=REDIS_PORT,
    db=databases[0],
)
REDIS_CONFIG_2 = RedisConfig(
    host=REDIS_HOST,
    port=REDIS_PORT,
    db=databases[1],
)
REDIS_CONFIG_3 = RedisConfig(
    host=REDIS_HOST,
    port=REDIS_PORT,
    db=databases[2],
)
