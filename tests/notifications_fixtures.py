"""Fixtures of the notifications tests: a real SMTP server, a real worker process that shares the test database.

Import the fixtures into a test module (``from tests.notifications_fixtures import smtp_sink_fixture  # noqa: F401``
makes the fixture ``smtp_sink`` available there).

The worker process must see the rows the test writes, so the test database must be one another process can
open: PostgreSQL's always is; SQLite's test database is in memory unless ``DATABASES["default"]["TEST"]["NAME"]``
names a file. Importing this module (at collection, before any test sets the database up) names one for
SQLite, in the temporary folder and per process, so concurrent test runs do not share it. pytest-django's
``django_db_modify_db_settings`` fixture cannot do this: ``django_db_setup`` runs once per session, for the first
test that needs a database (tests/test_add.py's, before these), so an override in these modules comes too late.
The lasting fix is one line in tests/settings.py (see the report of the notifications issue).
"""

from __future__ import annotations

import email
import email.policy
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from django.db import connection

from config.redis_server import free_port
from tests.conftest import ROOT, manage_env
from tests.helpers import kill_tree


def database_url() -> str:
    """The test database as a ``DATABASE_URL`` for a worker process (call it inside a test that has the db)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        assert "memory" not in name and Path(name).is_file(), f"the SQLite test database is not a file: {name}"
        return f"sqlite:///{name}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(db["USER"] or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise AssertionError(f"no DATABASE_URL for {db['ENGINE']}")


@dataclass
class Received:
    """One message the SMTP server accepted."""

    at: float
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content().replace("\r\n", "\n")

    @property
    def html(self) -> str | None:
        part = self.message.get_body(("html",))
        return part.get_content().replace("\r\n", "\n") if part is not None else None


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free loopback port; what it received is in ``messages``."""

    port: int = 0
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(Received(time.time(), envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {count} message(s); "
                                     f"got {len(self.messages)}")
            time.sleep(0.05)
        return list(self.messages)


@pytest.fixture(name="smtp_sink")
def smtp_sink_fixture() -> Iterator[SmtpSink]:
    """A real SMTP server for the test; the worker process gets ``EMAIL_URL=smtp_sink.url``."""
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextmanager
def worker(*queues: str, **env: str) -> Iterator[subprocess.Popen]:
    """``manage.py rqworker <queues>`` as a real process on the test database, with ``env`` (e.g. EMAIL_URL).

    Its output goes to a file (a pipe nobody reads could fill up and block it) and is printed at the end, so
    that a failing test shows it. Stopped with SIGTERM (killed, with its work horses, if it does not stop).
    """
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", *(queues or ("email", "notifications"))],
            cwd=ROOT, env=manage_env(DATABASE_URL=database_url(), **env), stdout=log, stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield proc
        finally:
            _stop(proc)
            log.seek(0)
            print(f"--- worker output ---\n{log.read()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
