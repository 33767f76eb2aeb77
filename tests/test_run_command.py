"""`python -m config.devrun` (what `dev.py run` runs), end to end with real processes.

Each test starts the launcher in a session of its own, reads its output in a thread, and checks that it
serves the admin, runs jobs in its worker, prints no secret, and leaves no process behind when stopped.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis

from config.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "never-print-me-4f9c"  # noqa: S105 - a Redis password that must not appear in the output
SERVER_NAMES = ("redis-server", "valkey-server")


@dataclass
class Launcher:
    process: subprocess.Popen[str]
    port: int
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    seen: list[psutil.Process] = field(default_factory=list)  # every process tree() found, for kill_everything
    reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def line(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first output line matching ``pattern``, waiting for it."""
        match = wait_for(lambda: next(filter(None, (re.search(pattern, line) for line in self.lines)), None),
                         timeout, self)
        assert match, f"no line matching {pattern!r}:\n{self.output}"
        return match

    def tree(self) -> list[psutil.Process]:
        found = psutil.Process(self.process.pid).children(recursive=True)
        self.seen += found
        return found

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, group: bool = False, timeout: float = 60) -> int:
        """Send ``sig`` to the launcher (or, like a terminal's Ctrl-C, to its whole process group); its exit code."""
        (os.killpg if group else os.kill)(self.process.pid, sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launcher did not exit within {timeout} s of {sig.name}:\n{self.output}")


def wait_for(check: Callable[[], object], timeout: float, launcher: Launcher | None = None) -> object:
    """``check()``'s first truthy result within ``timeout`` seconds, else None (sooner if the launcher exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if launcher and launcher.process.poll() is not None:  # it exited: one last look
            return check()
        time.sleep(0.2)
    return None


def launcher_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a developer's shell: no test Redis, the project's own settings, a fresh database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PYTEST_", "DJANGO_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DJANGO_SETTINGS_MODULE="config.settings",
               DJANGO_DEBUG="true")
    env.update(extra)
    return env


def start_launcher(env: dict[str, str], *args: str) -> Launcher:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "config.devrun", "--port", str(port), *args], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    launcher = Launcher(process, port, env)
    launcher.reader = threading.Thread(target=lambda: launcher.lines.extend(iter(process.stdout.readline, "")),
                                       daemon=True)
    launcher.reader.start()
    return launcher


def kill_everything(launcher: Launcher) -> None:
    """Kill the launcher and every process below it if still there, so a failing test leaves nothing behind."""
    processes = list(launcher.seen)
    if launcher.process.poll() is None:
        processes += [*launcher.tree(), psutil.Process(launcher.process.pid)]
    for proc in processes:
        if not proc.is_running():
            continue
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # its group (RQ's job horse has one of its own) ...
        with contextlib.suppress(psutil.Error):
            proc.kill()  # ... and itself, should it not lead one
    launcher.process.wait(10)
    if launcher.reader:
        launcher.reader.join(10)  # until every writer of the pipe is gone
    launcher.process.stdout.close()

def launch_running_a_slow_job(tmp_path: Path, seconds: float, *args: str) -> tuple[Launcher, str, str, list]:
    """A launcher on a private Redis with the test settings, once its worker runs a ``slow`` job of ``seconds``.

    Returns the launcher, its Redis URL, the job's id and the process tree (the job's horse among them).
    """
    env = launcher_env(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=str(free_port()),
                       DJANGO_SETTINGS_MODULE="tests.settings")
    launcher = start_launcher(env, *args)
    try:
        redis_url = launcher.line(r"Redis: started private \S+ at (redis://\S+)").group(1)
        wait_until_serving(launcher)
        job_id = add_job(launcher, redis_url, "tests.testapp.jobs.slow", {"key": "trace", "seconds": seconds})
        assert wait_for(lambda: trace(redis_url) == [b"started"], 30, launcher), launcher.output
        return launcher, redis_url, job_id, launcher.tree()
    except BaseException:
        kill_everything(launcher)
        raise



def get(launcher: Launcher, path: str, opener: urllib.request.OpenerDirector | None = None,
        data: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, final URL, body) of a request to the launcher's web server, redirects followed."""
    body = urllib.parse.urlencode(data).encode() if data else None
    request = urllib.request.Request(f"http://127.0.0.1:{launcher.port}{path}", data=body)
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=5) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.url, ""


def wait_until_serving(launcher: Launcher, timeout: float = 60) -> None:
    def answers() -> bool:
        try:
            return get(launcher, "/admin/login/")[0] == 200
        except OSError:
            return False

    assert wait_for(answers, timeout, launcher), f"no 200 from /admin/login/ within {timeout} s:\n{launcher.output}"
    launcher.tree()  # remember them all, for kill_everything


def add_job(launcher: Launcher, redis_url: str, job: str, data: dict[str, object]) -> str:
    """Add a job with ``manage.py shell`` (as a developer would, from another shell); its id."""
    code = f"from queues import get_queue; print(get_queue('email').add({job!r}, {data!r}).id)"
    result = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT,
                            env={**launcher.env, "REDIS_URL": redis_url}, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def job_status(redis_url: str, job_id: str) -> bytes | None:
    with redis.Redis.from_url(redis_url) as client:
        return client.hget(f"rq:job:{job_id}", "status")


def trace(redis_url: str) -> list[bytes]:
    """What tests.testapp.jobs.slow recorded: [b"started"], then [b"started", b"finished"]."""
    with redis.Redis.from_url(redis_url) as client:
        return client.lrange("trace", 0, -1)


def assert_all_gone(launcher: Launcher, processes: list[psutil.Process]) -> None:
    def alive() -> list[str]:
        found = []
        for proc in processes:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            except psutil.NoSuchProcess:
                pass
        return found

    wait_for(lambda: not alive(), 5)
    assert not alive(), f"left behind: {alive()}\n{launcher.output}"


def names(processes: list[psutil.Process]) -> set[str]:
    found = set()
    for proc in processes:
        try:
            found.add(proc.name())
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.timeout(120)
def test_run_command__starts_a_private_redis_when_none_answers(tmp_path: Path) -> None:
    """Start a private Redis, serve the admin, run a job, then stop everything on SIGTERM."""
    env = launcher_env(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=str(free_port()), REDIS_PASSWORD=SECRET)
    launcher = start_launcher(env)
    try:
        started = launcher.line(r"Redis: started private (\S+) at (redis://127\.0\.0\.1:\d+/0) \(pid (\d+)\)")
        assert "Redis: WARNING: nothing answers at 127.0.0.1:" in launcher.output
        server_name, redis_url, server_pid = started.group(1), started.group(2), int(started.group(3))
        wait_until_serving(launcher)

        password = launcher.line(r"Admin: http://127\.0\.0\.1:\d+/admin/  user admin  password (\S+)").group(1)
        assert get(launcher, "/admin/")[1].endswith("/admin/login/?next=/admin/")
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', get(launcher, "/admin/login/", opener)[2])
        assert token
        status, url, body = get(launcher, "/admin/login/?next=/admin/", opener,
                                {"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": password})
        assert (status, url.split(str(launcher.port))[1]) == (200, "/admin/"), body[:500]
        assert "Site administration" in body

        job_id = add_job(launcher, redis_url, "notifications.ping", {"message": "hello-from-shell"})
        assert wait_for(lambda: job_status(redis_url, job_id) == b"finished", 30, launcher), launcher.output

        processes = launcher.tree()
        assert server_pid in [proc.pid for proc in processes]
        assert server_name in names(processes)
        commands = [" ".join(proc.cmdline()) for proc in processes]
        assert sum("runserver" in command for command in commands) == 2  # the autoreloader and its server
        # A light run: one worker process takes every queue's jobs (and promotes delayed jobs, runs the job
        # schedulers), so no scheduler process runs beside it; the keeper, and Redis: 5 processes in all.
        assert sum("rqworker" in command for command in commands) == 1
        assert len(processes) == 5, commands

        assert launcher.stop() == 0, launcher.output
        assert_all_gone(launcher, processes)
        assert "Redis: stopped the private" in launcher.output
        assert SECRET not in launcher.output
    finally:
        kill_everything(launcher)


@pytest.mark.timeout(120)
def test_run_command__uses_the_redis_that_answers(tmp_path: Path, redis_server: RedisServer) -> None:
    """Use the Redis REDIS_URL names when it answers, without starting one."""
    launcher = start_launcher(launcher_env(tmp_path, REDIS_URL=redis_server.url))
    try:
        wait_until_serving(launcher)
        processes = launcher.tree()
        assert f"Redis: using 127.0.0.1:{redis_server.port} db 0 (from REDIS_URL)" in launcher.output
        assert not names(processes) & set(SERVER_NAMES)
        assert "started private" not in launcher.output
        assert launcher.stop() == 0, launcher.output
        assert_all_gone(launcher, processes)
        assert redis_server.ping()
    finally:
        kill_everything(launcher)


@pytest.mark.timeout(120)
def test_run_command__never_prints_the_redis_password(tmp_path: Path) -> None:
    """Use a password-protected Redis named by REDIS_HOST/REDIS_PORT/REDIS_PASSWORD, printing only host:port."""
    with RedisServer(tmp_path / "redis", password=SECRET) as server:
        env = launcher_env(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port), REDIS_PASSWORD=SECRET)
        launcher = start_launcher(env)
        try:
            wait_until_serving(launcher)
            job_id = add_job(launcher, server.url, "notifications.ping", {"message": "with a password"})
            assert wait_for(lambda: job_status(server.url, job_id) == b"finished", 30, launcher), launcher.output
            assert launcher.stop(signal.SIGINT) == 0, launcher.output
            assert f"Redis: using 127.0.0.1:{server.port} db 0 (from REDIS_HOST/REDIS_PORT)" in launcher.output
            assert SECRET not in launcher.output
        finally:
            kill_everything(launcher)


@pytest.mark.timeout(120)
def test_run_command__lets_the_running_job_finish_on_ctrl_c(tmp_path: Path) -> None:
    """Let the running job finish when Ctrl-C reaches the launcher's whole process group, Redis stopping last."""
    launcher, redis_url, job_id, processes = launch_running_a_slow_job(tmp_path, 3)
    try:  # the job's horse among them
        assert launcher.stop(signal.SIGINT, group=True) == 0, launcher.output
        assert_all_gone(launcher, processes)
        output = launcher.output
        assert "stopping after the running job" in output
        assert output.index(f"job completed id={job_id}") < output.index("Redis: stopped the private"), output
        assert "Redis connection error" not in output
        assert "cold shutdown" not in output
        assert job_id in output
    finally:
        kill_everything(launcher)


@pytest.mark.timeout(120)
def test_run_command__kills_a_job_that_outlasts_the_grace(tmp_path: Path) -> None:
    """Kill the worker's running job, its horse included, when it outlasts --grace."""
    launcher, _redis_url, _job_id, processes = launch_running_a_slow_job(tmp_path, 300, "--grace", "2")
    try:
        started = time.monotonic()
        assert launcher.stop() == 0, launcher.output
        assert time.monotonic() - started < 20, launcher.output
        assert_all_gone(launcher, processes)
        assert "The worker is still busy: cold shutdown" in launcher.output
    finally:
        kill_everything(launcher)


@pytest.mark.timeout(120)
def test_run_command__stops_in_order_when_killed(tmp_path: Path) -> None:
    """Stop everything in order, the running job finishing, when the launcher is killed with SIGKILL."""
    launcher, redis_url, job_id, processes = launch_running_a_slow_job(tmp_path, 3)
    try:
        assert launcher.stop(signal.SIGKILL) == -signal.SIGKILL
        assert wait_for(lambda: "Redis: stopped the private" in launcher.output, 30), launcher.output
        assert_all_gone(launcher, processes)
        output = launcher.output
        assert output.index(f"job completed id={job_id}") < output.index("Redis: stopped the private"), output
        assert "Redis connection error" not in output
    finally:
        kill_everything(launcher)


@pytest.mark.timeout(120)
def test_run_command__none_configured__a_private_redis_and_the_password_comes_last(tmp_path: Path) -> None:
    """With no REDIS_* variable, a private Redis even if one answers on 6379 (the demo's keys go nowhere else);
    the login line comes once the web server answers and the worker is up, and no "Redis connected" line buries it."""
    launcher = start_launcher(launcher_env(tmp_path))
    try:
        launcher.line(r"Redis: started private \S+ at redis://127\.0\.0\.1:\d+/0")
        assert "Redis: none configured" in launcher.output and "using" not in launcher.output
        login = launcher.line(r"Admin: http://127\.0\.0\.1:\d+/admin/  user admin  password \S+", timeout=60)
        assert wait_for(lambda: "Ready (light workers" in launcher.output, 10, launcher), launcher.output
        lines = launcher.lines
        ready = next(i for i, line in enumerate(lines) if "Ready (light workers" in line)
        taking = next(i for i, line in enumerate(lines) if "taking jobs from" in line)
        assert taking < ready < lines.index(login.string), launcher.output
        assert "Redis connected" not in launcher.output
        assert launcher.stop() == 0, launcher.output
    finally:
        kill_everything(launcher)


@pytest.mark.timeout(120)
def test_run_command__full_workers_run_each_queues_concurrency(tmp_path: Path) -> None:
    """``--workers full``: the worker command supervises one process per unit of each queue's concurrency."""
    from config import settings as project_settings

    launcher = start_launcher(launcher_env(tmp_path), "--workers", "full")
    try:
        wait_until_serving(launcher)
        assert wait_for(lambda: "Ready (full workers" in launcher.output, 60, launcher), launcher.output
        commands = [" ".join(proc.cmdline()) for proc in launcher.tree()]
        workers = sum(spec.get("concurrency", 1) for spec in project_settings.QUEUES.values())
        assert sum("rqworker email" in command for command in commands) == 1 + workers
        assert launcher.stop() == 0, launcher.output
    finally:
        kill_everything(launcher)
