"""Helpers the tests share: waiting on a condition, worker processes, and reading what jobs left in Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import psutil
import redis
from django.test import Client
from rq.results import Result

from queues import get_queue
from tests.conftest import ROOT, manage, manage_env

T = TypeVar("T")


def wait_for(condition: Callable[[], object], timeout: float, what: str,
             procs: subprocess.Popen | Iterable[subprocess.Popen] = ()) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` s, or at once if one of ``procs`` exits."""
    watched = [procs] if isinstance(procs, subprocess.Popen) else list(procs)
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in watched:
            if proc.poll() is not None:
                log = getattr(proc, "log", None)
                raise AssertionError(f"a process exited ({proc.returncode}) while waiting for {what}"
                                     + (f":\n{log.read_text()}" if log is not None else ""))
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def run_async(coroutine: Coroutine[object, object, T]) -> T:
    """Run ``coroutine`` to its end on an event loop of its own, in another thread: the test process may have a loop
    running in its main thread (Playwright's sync API leaves one), where ``asyncio.run`` refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# --- minutes of the metrics ----------------------------------------------------------------------------------
# A job counts in the metrics of the minute it ended: the finish script takes that minute and the job's ended_at
# from one clock reading. A test that reads the counts "of this minute" fails when the minute turns between the job
# and the read (hh:mm:59.4, then hh:mm+1:00.1); these look the job's own minute up instead.


def epoch_minute(at: datetime | None = None) -> int:
    """The epoch minute of ``at`` (a job's ``ended_at``, say), or of now."""
    return int((time.time() if at is None else at.timestamp()) // 60)


def ended_minute(job_id: str, queue: str) -> int:
    """The epoch minute the job ended in: the one its completed or failed count went to."""
    handle = get_queue(queue).get_job(job_id)
    assert handle is not None and handle.ended_at is not None, f"job {job_id} has not ended"
    return epoch_minute(handle.ended_at)


def per_minute(counts: Mapping[int, int], end: int, minutes: int = 60) -> list[int]:
    """The ``per_minute`` list (oldest first, ``end`` the last epoch minute) that holds ``counts`` ({minute: n})."""
    return [counts.get(minute, 0) for minute in range(end - minutes + 1, end + 1)]


def within_one_minute(read: Callable[[], T]) -> tuple[T, int]:
    """``read()`` and the epoch minute it ran in: read again if the minute turned while it ran, so that a page's
    "last minute" is known."""
    while True:
        before = epoch_minute()
        result = read()
        if epoch_minute() == before:
            return result, before


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and every process below it."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.kill()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@contextmanager
def worker_process(*args: str) -> Iterator[subprocess.Popen]:
    """``manage.py <args>`` as a real process; killed (with its children) if a test leaves it running."""
    proc = manage(*args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            kill_tree(proc)
            out, _ = proc.communicate(timeout=10)
            print(f"--- output of manage.py {' '.join(args)} (killed) ---\n{out}")


@contextmanager
def signals_restored() -> Iterator[None]:
    """An in-process RQ worker installs SIGINT/SIGTERM handlers in the test process: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class Commands:
    """What the session's own server runs, as MONITOR reports it (a thread reads it): which processes sent which
    commands, in the order the server ran them. For "this worker looked, and took nothing", with no sleep that a slow
    worker would outlast: ``with Commands(redis_client) as seen: ... since = seen.mark(); ...
    wait_for(lambda: seen.sent_by(pid, since, "EVALSHA", key), ...)``."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.lines: list[tuple[str, str]] = []  # (client port, command and arguments, space-separated)
        self._done = threading.Event()
        self._monitor = client.monitor()
        self._thread = threading.Thread(target=self._read, name="redis-monitor", daemon=True)

    def __enter__(self) -> Commands:
        self._monitor.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.client.ping()  # one more line, so that the reader sees it is done
        self._thread.join(timeout=10)
        self._monitor.__exit__()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                line = self._monitor.next_command()
            except (redis.RedisError, OSError):
                return
            if line and line["client_type"] == "tcp":
                self.lines.append((line["client_port"], line["command"]))

    def mark(self) -> int:
        """A point in the server's order of commands: everything that comes after it ran after this call."""
        token = f"mark-{uuid.uuid4().hex}"
        self.client.echo(token)
        wait_for(lambda: any(token in command for _port, command in self.lines), 10, "MONITOR to show the mark")
        return next(n for n, (_port, command) in enumerate(self.lines) if token in command)

    def sent_by(self, pid: int, since: int, *words: str) -> bool:
        """Whether the process ``pid`` (or a child of it) sent, after the mark ``since``, a command containing each
        of ``words`` (``"EVALSHA"`` and a key its script reads, say)."""
        ports = set()
        try:
            process = psutil.Process(pid)
            for each in (process, *process.children(recursive=True)):
                ports |= {str(conn.laddr.port) for conn in each.net_connections("tcp")}
        except psutil.NoSuchProcess:
            return False
        return any(port in ports and all(word in command for word in words)
                   for port, command in self.lines[since + 1:])


def values(client: redis.Redis, key: str) -> list[str]:
    return [v.decode() for v in client.lrange(key, 0, -1)]


def last_failure(job_id: str, queue: str = "email") -> str:
    """The traceback RQ stored for the job's last run, which must have failed."""
    handle = get_queue(queue).get_job(job_id)
    assert handle is not None, f"job {job_id} is gone"
    result = handle.rq_job.latest_result()
    assert result is not None, f"job {job_id} has no result"
    assert result.type == Result.Type.FAILED, result.type
    return result.exc_string or ""


def staff_client(username: str, *codenames: str) -> Client:
    """A test client logged in as a new staff user holding the ``queues`` permissions ``codenames``."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="queues", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


class Workers:
    """``manage.py`` processes a test starts, each writing its output to a file (a pipe nobody reads would fill up
    and block a busy worker); whatever is still running at the end is killed with its children. The ``workers``
    fixture (tests/conftest.py) hands one to a test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.folder / f"{len(self.procs)}-{'-'.join(args)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
                                    env=env or manage_env(), stdout=out, stderr=subprocess.STDOUT)
        proc.log = log  # type: ignore[attr-defined]
        proc.args_text = " ".join(args)  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc)
                proc.wait(timeout=10)
            print(f"--- manage.py {proc.args_text} (pid {proc.pid}, exit {proc.returncode}) ---\n{output(proc)}")


def output(proc: subprocess.Popen) -> str:
    """What a process started by :class:`Workers` has written so far."""
    return proc.log.read_text()  # type: ignore[attr-defined]


def processes_env() -> dict[str, str]:
    """The environment of a worker whose queues run in worker processes (as the process-counting tests need), even
    when the suite runs with another QUEUES_TEST_MODE."""
    mode = os.environ.get("QUEUES_TEST_MODE")
    return manage_env(QUEUES_TEST_MODE="processes" if mode == "threads" else mode or "")
