"""The private Redis server of the django-rq suite's session (not part of django-rq's tests).

pytest-django imports the settings in its ``pytest_load_initial_conftests`` hook, before any conftest.py is loaded,
and django-rq's settings (``tests_django_rq/redis_config.py``) need the server's port at import. So the server is
started here, in a plugin that ``tests_django_rq/pytest.ini`` loads with ``-p`` and whose hook runs first
(``tryfirst``): a ``redis-server`` on a free port of 127.0.0.1 (``config.redis_server.RedisServer``, as our own
suite's), its port exported as ``DJANGO_RQ_SUITE_REDIS_PORT`` before the settings load, stopped by its pid when the
session ends. The machine's Redis at 127.0.0.1:6379 is never used: ``redis_config.py`` refuses to load without this
variable, or with 6379 in it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from config.redis_server import RedisServer, server_binary

PORT_VARIABLE = "DJANGO_RQ_SUITE_REDIS_PORT"
_server: RedisServer | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    global _server  # noqa: PLW0603
    if _server is not None:
        return
    directory = Path(tempfile.mkdtemp(prefix="django-rq-suite-redis-"))
    _server = RedisServer(directory, binary=server_binary(os.environ.get("QUEUES_TEST_REDIS_PATH"))).start()
    if _server.port == 6379:  # free_port() never gives a port something listens on; never the system's, anyway
        _server.stop()
        raise pytest.UsageError("the private Redis server got port 6379; run again")
    os.environ[PORT_VARIABLE] = str(_server.port)
    # Subprocesses (the worker processes `rqworker` supervises are forks, but be safe) find it the same way.
    os.environ.pop("REDIS_URL", None)


def pytest_report_header(config: pytest.Config) -> str | None:
    if _server is None:
        return None
    return f"django-rq suite: private {_server.name} on 127.0.0.1:{_server.port} (pid {_server.pid})"


def pytest_unconfigure(config: pytest.Config) -> None:
    global _server  # noqa: PLW0603
    if _server is None:
        return
    _server.stop()
    shutil.rmtree(_server.directory, ignore_errors=True)
    _server = None
    os.environ.pop(PORT_VARIABLE, None)
