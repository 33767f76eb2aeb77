"""Helpers the tests share: waiting on a condition, worker processes, and reading what jobs left in Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import redis
from django.test import Client
from rq.results import Result

from queues import get_queue
from tests.conftest import ROOT, manage, manage_env


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
