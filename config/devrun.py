"""Run the whole project for local development: what ``python3.11 dev.py run`` ends with.

    python -m config.devrun [--host 127.0.0.1] [--port 8000] [--grace 30]

1. Environment of everything it starts: ``DJANGO_SETTINGS_MODULE`` (default ``config.settings``),
   ``DJANGO_DEBUG=true`` unless set, ``PYTHONUNBUFFERED=1``.
2. Redis: the one ``REDIS_URL`` / ``REDIS_HOST``... name if it answers (its database is said); when none is named,
   or the one named does not answer, a private one on a free loopback port (``config.redis_server``), which
   ``REDIS_URL`` then names for every child: the demo never writes into a Redis it was not pointed at.
3. ``manage.py migrate``; a demo superuser ``admin`` (its random password is printed once, when created, last,
   once the web server answers and the worker is up, so the children's start-up lines do not scroll it away).
4. ``manage.py runserver`` (autoreloader on) and ``manage.py rqworker`` on every queue of ``QUEUES`` (the worker
   is also the scheduler: it promotes delayed jobs and runs the job schedulers), each in a session of its own; on
   Linux the kernel sends them SIGTERM should their parent die. ``--workers light`` (default): one worker process
   for every queue, one job at a time (``queues.worker.SimpleWorker``), about 4 processes in all;
   ``--workers full``: each queue's ``mode`` and ``concurrency``, as in production.
5. On SIGINT / SIGTERM / SIGHUP, or when either child exits on its own: SIGTERM to both process groups; the
   worker may finish its running job for ``--grace`` seconds (RQ's warm shutdown), the web server gets 5; what is
   left is killed, then the private Redis is stopped, last. Exit status 0 after a requested stop, 1 if a child died.

The process you start (the "front") only passes signals on and exits with the status of its child, the "keeper",
which does all of the above in a session of its own: a terminal's Ctrl-C reaches the keeper alone (never Redis
before the worker is done), and killing the front, even with SIGKILL, still stops everything in order.
Django settings are never loaded here (set-up runs ``manage.py`` subprocesses). No secret is printed, except the
demo password of a newly created ``admin``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

from config.env import EnvError, redis_from_env
from config.redis_server import RedisServer, reachable

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]
REDIS_VARIABLES = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD",
                   "REDIS_TLS", "REDIS_TLS_CA_CERTS", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
                   "REDIS_SENTINEL_PASSWORD")
WEB_GRACE = 5.0
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
# Run by `manage.py shell -c`: ensures the demo admin exists; prints one JSON line, the only stdout we read.
SETUP = """
import json, secrets
from django.conf import settings
from django.contrib.auth import get_user_model
users, password = get_user_model().objects, None
if not users.filter(username="admin").exists():
    password = secrets.token_urlsafe(12)
    users.create_superuser("admin", "", password)
print(json.dumps({"queues": list(settings.QUEUES), "password": password}))
"""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_signals: list[int] = []  # stop signals the keeper received since it started the children


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dev.py run", description="Run the web server, a worker with its scheduler "
                                     "and (when none answers) a private Redis, for local development.")
    parser.add_argument("--port", type=int, default=8000, help="port of the web server (default: %(default)r)")
    parser.add_argument("--host", default="127.0.0.1", help="address the web server binds (default: %(default)r)")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds the worker may take to finish its running job on shutdown (default: %(default)r)")
    parser.add_argument("--workers", choices=("light", "full"), default="light",
                        help="light: one worker process for every queue; full: each queue's mode and concurrency, "
                             "as in production (default: %(default)s)")
    return parser.parse_args(argv)


def redis_url_and_place() -> tuple[str, str]:
    """The URL of the Redis the environment names (credentials included) and its printable ``host:port db N``."""
    config = redis_from_env()
    if "URL" in config:
        url = config["URL"]
        parts = urlsplit(url)
        db = (parts.path.strip("/") or "0") if parts.scheme != "unix" else "0"
        place = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379} db {db}"
    else:
        user, password = config["USERNAME"] or "", config["PASSWORD"] or ""
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user or password else ""
        host = f"[{config['HOST']}]" if ":" in config["HOST"] else config["HOST"]
        url = f"{'rediss' if config['SSL'] else 'redis'}://{auth}{host}:{config['PORT']}/{config['DB']}"
        place = f"{host}:{config['PORT']} db {config['DB']}"
    if config.get("SSL_CA_CERTS"):
        url += ("&" if "?" in url else "?") + "ssl_ca_certs=" + quote(config["SSL_CA_CERTS"])
    return url, place


def choose_redis() -> RedisServer | None:
    """Use the configured Redis if it answers, else start a private one and point ``REDIS_URL`` at it. With no
    ``REDIS_*`` variable at all, a private one too: the demo's keys never land in a Redis nobody pointed it at."""
    configured = any(os.environ.get(v, "").strip() for v in REDIS_VARIABLES)
    source = "from REDIS_URL" if os.environ.get("REDIS_URL", "").strip() else "from REDIS_HOST/REDIS_PORT"
    if os.environ.get("REDIS_SENTINELS", "").strip():
        config = redis_from_env()
        print(f"Redis: using the primary {config['SENTINEL_MASTER']!r} of Sentinel {os.environ['REDIS_SENTINELS']} "
              f"db {config.get('DB', 0)}; the demo's jobs and keys go there")
        return None
    if configured:
        url, place = redis_url_and_place()
        if reachable(url):
            print(f"Redis: using {place} ({source}); the demo's jobs and keys go there")
            return None
        print(f"Redis: WARNING: nothing answers at {place} ({source}); starting a private server instead")
    else:
        print("Redis: none configured (REDIS_URL, or REDIS_HOST and REDIS_PORT); starting a private server")
    server = RedisServer(directory=ROOT / ".run" / "redis").start()
    for name in REDIS_VARIABLES:
        os.environ.pop(name, None)
    os.environ["REDIS_URL"] = server.url
    print(f"Redis: started private {server.name} at {server.url} (pid {server.pid}); "
          f"from another shell: export REDIS_URL={server.url}")
    return server


def set_up(host: str, port: int) -> tuple[list[str], str]:
    """Migrate and ensure the demo admin exists; return the queue names of ``settings.QUEUES`` and the line that
    tells the developer how to log in (printed once everything is up)."""
    migrate = subprocess.run([*MANAGE, "migrate", "--noinput"], cwd=ROOT, check=False)
    if migrate.returncode:
        raise SystemExit(f"manage.py migrate failed (exit {migrate.returncode}): see its output above.")
    setup = subprocess.run([*MANAGE, "shell", "--no-imports", "-c", SETUP], cwd=ROOT, check=False,
                           stdout=subprocess.PIPE, text=True)
    if setup.returncode:
        raise SystemExit(f"Creating the demo admin failed (exit {setup.returncode}): see the output above.")
    result = json.loads(setup.stdout.strip().splitlines()[-1])
    admin = f"Admin: http://{host}:{port}/admin/  user admin"
    login = (f"{admin}  password {result['password']}" if result["password"]
             else f"{admin} (password unchanged: manage.py changepassword admin to reset)")
    return list(result["queues"]), login


def wait_until_up(host: str, port: int, processes: list[subprocess.Popen[bytes]], timeout: float = 60) -> bool:
    """Wait until the web server answers and a worker has registered in Redis (or a child exited, or a stop signal
    came, or ``timeout``); whether everything is up."""
    import redis  # the children import Django; this process only needs the client

    client = redis.Redis.from_url(os.environ["REDIS_URL"]) if os.environ.get("REDIS_URL") else None
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/admin/login/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _signals and all(p.poll() is None for p in processes):
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own server, on the loopback
                pass
            if client is None or client.scard("rq:workers"):
                return True
        except (OSError, redis.RedisError):
            pass
        time.sleep(0.2)
    return False


def die_with_launcher() -> None:
    """On Linux, have the kernel send this process SIGTERM when its parent dies (``preexec_fn`` of each child)."""
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(*args: str) -> subprocess.Popen[bytes]:
    """``manage.py <args>`` in a session (and process group) of its own, output to ours."""
    return subprocess.Popen([*MANAGE, *args], cwd=ROOT, start_new_session=True, preexec_fn=die_with_launcher)


def descendants(root: int) -> list[int]:
    """The pids of every process below ``root``, read from /proc (an empty list where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def kill(pids: list[int]) -> None:
    """SIGKILL each pid and its process group (RQ's job horse has a group of its own); reap our children."""
    for pid in pids:
        for send in (os.killpg, os.kill):
            with contextlib.suppress(OSError):
                send(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def wait(process: subprocess.Popen[bytes], deadline: float, patience: int) -> bool:
    """Wait for ``process`` until ``deadline`` or until more than ``patience`` signals came; whether it ended."""
    while process.poll() is None and time.monotonic() < deadline and len(_signals) <= patience:
        time.sleep(0.1)
    return process.poll() is not None


def stop(web: subprocess.Popen[bytes], worker: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM both groups, give each its time, then kill what is left (and anything they left behind)."""
    patience = len(_signals)  # one more Ctrl-C or SIGTERM during the shutdown means "now"
    for process in (worker, web):
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGTERM)
    print(f"Stopping: the web server, and the worker once its running job ends (up to {grace:g} s; "
          "Ctrl-C again to stop at once) ...")
    started = time.monotonic()
    for process, name, deadline in ((web, "web server", started + WEB_GRACE), (worker, "worker", started + grace)):
        if not wait(process, deadline, patience) and name == "worker":
            print("The worker is still busy: cold shutdown (its running job is killed).")
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGTERM)  # RQ's second signal kills the job horse
            wait(process, time.monotonic() + WEB_GRACE, patience + 1)
        if process.poll() is None:
            kill([*descendants(process.pid), process.pid])
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # anything left in its group
        process.wait()


def run(args: argparse.Namespace) -> int:
    queues, login = set_up(args.host, args.port)
    for signum in STOP_SIGNALS:
        signal.signal(signum, on_stop_signal)
    address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    web = start("runserver", address)
    light = ["--worker-class", "queues.worker.SimpleWorker"] if args.workers == "light" else []
    worker = start("rqworker", *light, *queues)
    if wait_until_up(args.host, args.port, [web, worker]):
        print(f"Ready ({args.workers} workers: {'one process for every queue' if light else 'as QUEUES sets'}). "
              "Ctrl-C stops everything.")
    print(login)
    died = None
    while not _signals and died is None:
        time.sleep(0.2)
        died = next((name for name, p in (("runserver", web), ("rqworker", worker)) if p.poll() is not None), None)
    if died:
        code = (web if died == "runserver" else worker).returncode
        print(f"{died} exited on its own (exit code {code}): stopping everything.")
    stop(web, worker, args.grace)
    return 1 if died else 0


def on_stop_signal(signum: int, _frame: object) -> None:
    if signum == signal.SIGHUP:  # the terminal is gone: writing to it would fail, so write nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    _signals.append(signum)


def keep(args: argparse.Namespace) -> int:
    """The keeper: everything the module docstring lists; returns the exit status."""
    if LIBC is not None:  # processes our children orphan (e.g. a job horse) become ours, so we can end them
        LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1)
    for signum in STOP_SIGNALS:  # during set-up, each acts like Ctrl-C
        signal.signal(signum, signal.default_int_handler)
    server = None
    try:
        server = choose_redis()
        return run(args)
    except (EnvError, RuntimeError) as e:  # a bad REDIS_* variable; no Redis binary, or it would not start
        print(f"Configuration error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted during set-up.", file=sys.stderr)
        return 0
    finally:
        for signum in STOP_SIGNALS:  # nothing interrupts the clean-up
            signal.signal(signum, on_stop_signal)
        kill([pid for pid in descendants(os.getpid()) if pid != (server and server.pid)])
        if server is not None:
            server.stop()
            print(f"Redis: stopped the private {server.name} (pid {server.pid}).")


def front(keeper: int) -> int:
    """The process the developer started: pass stop signals on to the keeper; exit with its status."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, _frame: os.kill(keeper, signum))
    status = os.waitpid(keeper, 0)[1]
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr] # our lines interleave with the children's
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ["PYTHONUNBUFFERED"] = "1"
    front_pid, keeper = os.getpid(), os.fork()
    if keeper:
        return front(keeper)
    os.setsid()
    die_with_launcher()  # the front killed, even by SIGKILL: SIGTERM, so the usual orderly stop
    return keep(args) if os.getppid() == front_pid else 1  # (unless it died before that line)


if __name__ == "__main__":
    sys.exit(main())
