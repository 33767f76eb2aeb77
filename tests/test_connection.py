"""The Redis connection (queues/connection.py), proven against real redis-server processes only.

One client per process and role, built on first use and never at import; password and TLS (a throw-away CA
from ``trustme``); retries on connection loss (bounded in a web process, unbounded in a worker); logs that
name host and port but never the password; and no socket shared with a forked child.
"""

from __future__ import annotations

import ast
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import trustme
from django.test import override_settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.redis_server import RedisServer, free_port
from queues import get_queue
from queues.connection import WEB, WORKER, get_connection, reset_connections
from queues.worker import Worker
from tests.testapp.jobs import whoami

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret-Pa55-word-that-must-never-be-shown"  # noqa: S105 - a throw-away test password


# --- helpers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """PEM files of a throw-away CA and of a server certificate it signed for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path) -> Certs:
    """Write a new CA, and a server certificate (chain) and key it signed, into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    certs = Certs(ca=directory / "ca.pem", cert=directory / "server-chain.pem", key=directory / "server-key.pem")
    ca.cert_pem.write_to_path(str(certs.ca))
    certs.cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(certs.key))
    return certs


class TLSRedisServer(RedisServer):
    """A redis-server that speaks TLS only: ``--port 0`` (after the base ``--port``) turns plain text off."""

    def __init__(self, directory: Path, certs: Certs) -> None:
        port = free_port()
        super().__init__(directory, port=port, extra_args=(
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(certs.cert),
            "--tls-key-file", str(certs.key),
            "--tls-ca-cert-file", str(certs.ca),
            "--tls-auth-clients", "no",
        ))
        self.certs = certs

    def ping(self) -> bool:
        """Whether the server answers PING over TLS (the base class pings in plain text)."""
        client = redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.certs.ca),
                             socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()


def start_tls_server(directory: Path) -> TLSRedisServer:
    """A started TLS-only server with a fresh certificate; skips when the binary was built without TLS."""
    server = TLSRedisServer(directory, make_certs(directory / "certs"))
    try:
        return server.start()
    except RuntimeError as e:
        if "tls" in str(e).lower():
            pytest.skip(f"{server.binary} cannot serve TLS: {e}")
        raise


def python_env(**extra: str) -> dict[str, str]:
    """This environment without any REDIS_* variable (the session sets REDIS_URL), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DJANGO_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in the project folder, as a fresh process."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def restart_later(server: RedisServer, delay: float) -> threading.Thread:
    """Start ``server`` again (same port) after ``delay`` seconds, in a background thread."""
    thread = threading.Thread(target=lambda: (time.sleep(delay), server.start()), daemon=True)
    thread.start()
    return thread


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def reaches(logger: logging.Logger, handler: logging.Handler) -> bool:
    """Whether records of ``logger`` reach ``handler``."""
    current: logging.Logger | None = logger
    while current is not None:
        if handler in current.handlers:
            return True
        current = current.parent if current.propagate else None
    return False


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "queues.connection" and r.levelno == level]


@pytest.fixture
def connection_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` for the "queues.connection" logger at DEBUG (the project's LOGGING stops propagation at "queues")."""
    logger = logging.getLogger("queues.connection")
    caplog.set_level(logging.DEBUG, logger="queues.connection")
    added = not reaches(logger, caplog.handler)  # newer pytest versions attach it to "queues" themselves
    if added:
        logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        if added:
            logger.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis-password"), password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRedisServer]:
    server = start_tls_server(tmp_path_factory.mktemp("redis-tls"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test alone, which it may stop and start again on the same port."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


# --- one client per process, built on first use ---------------------------------------------------------------


def test_connection__import_opens_no_connection() -> None:
    """Import queues, queues.connection and the settings, and set Django up, without opening a connection."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # A listener that never accepts: any connection attempt would wait in its backlog, where we see it.
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        code = (
            "import time; started = time.monotonic()\n"
            "import queues, queues.connection, config.settings\n"
            "import django; django.setup()\n"
            "import queues.worker, tests.testapp.jobs\n"
            "print(len(queues.connection._clients), round(time.monotonic() - started, 3))\n"
        )
        env = python_env(REDIS_URL=f"redis://127.0.0.1:{port}/0", DJANGO_SETTINGS_MODULE="tests.settings",
                         DJANGO_SECRET_KEY="tests-only-" + "x" * 50)
        try:
            result = run_python(code, env, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("import and django.setup() hung: something connected to Redis and waited for an answer")
        assert result.returncode == 0, result.stderr
        clients, seconds = result.stdout.split()
        assert clients == "0"
        assert float(seconds) < 10
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_connection__one_client_per_process_and_role(redis_server: RedisServer,
                                                      connection_log: pytest.LogCaptureFixture) -> None:
    """Return the same client for a role on every call, another for the worker role, connecting on first use."""
    with override_settings(QUEUES_REDIS={"URL": redis_server.url}):
        web = get_connection()
        assert get_connection() is web
        assert get_connection(WEB) is web
        worker = get_connection(WORKER)
        assert worker is not web
        assert get_connection("worker") is worker
        assert messages(connection_log, logging.INFO) == []  # built, not connected
        assert web.ping() is True
        assert worker.ping() is True
        assert web.client_id() != worker.client_id()


def test_connection__settings_change_builds_new_client(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    """Build a new client when QUEUES_REDIS changes (override_settings), and close the old one's socket."""
    before = get_connection()
    before_id = str(before.client_id())
    with override_settings(QUEUES_REDIS={"HOST": "127.0.0.1", "PORT": redis_server.port}):
        assert wait_until(lambda: before_id not in {c["id"] for c in redis_client.client_list()})
        during = get_connection()
        assert during is not before
        assert during.ping() is True
    after = get_connection()
    assert after is not during
    assert after.ping() is True


# --- password ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["host", "url"])
def test_connection__password(form: str, password_server: RedisServer,
                              connection_log: pytest.LogCaptureFixture) -> None:
    """Authenticate with the password, refuse a wrong one, and never show the password in logs or reprs."""
    port = password_server.port

    def config(password: str) -> dict:
        if form == "url":
            return {"URL": f"redis://:{password}@127.0.0.1:{port}/0"}
        return {"HOST": "127.0.0.1", "PORT": port, "PASSWORD": password}

    shown: list[str] = []
    with override_settings(QUEUES_REDIS=config(PASSWORD)):
        client = get_connection()
        assert client.ping() is True
        assert client.set("k", "v") is True
        shown += [repr(client), repr(client.connection_pool)]
    assert f"Redis connected (127.0.0.1:{port})" in messages(connection_log, logging.DEBUG)

    wrong = "wrong-" + PASSWORD[::-1]
    with override_settings(QUEUES_REDIS=config(wrong)), \
            pytest.raises((redis.AuthenticationError, redis.ResponseError)) as e:
        get_connection().ping()
    shown += [str(e.value), repr(e.value)]
    errors = messages(connection_log, logging.ERROR)
    assert errors and all(f"(127.0.0.1:{port})" in m for m in errors)

    shown += [connection_log.text, *(r.getMessage() for r in connection_log.records)]
    for text in shown:
        assert PASSWORD not in text
        assert wrong not in text


def test_connection__no_password_is_refused(password_server: RedisServer) -> None:
    """Refuse a server that requires a password when none is configured."""
    with override_settings(QUEUES_REDIS={"HOST": "127.0.0.1", "PORT": password_server.port}), \
            pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        get_connection().ping()


def test_connection__worker_wrong_password_fails(password_server: RedisServer) -> None:
    """Raise a wrong password in a worker at once instead of retrying it forever (a retry cannot fix it)."""
    config = {"HOST": "127.0.0.1", "PORT": password_server.port, "PASSWORD": "wrong"}
    outcome: list[BaseException] = []

    def ping() -> None:
        try:
            get_connection(WORKER).ping()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    with override_settings(QUEUES_REDIS=config):
        thread = threading.Thread(target=ping, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "a worker kept retrying a wrong password"
    assert len(outcome) == 1
    assert isinstance(outcome[0], redis.AuthenticationError | redis.ResponseError)


# --- TLS ---------------------------------------------------------------------------------------------------


def test_connection__tls_server_speaks_tls_only(tls_server: TLSRedisServer) -> None:
    """Refuse plain text on the TLS server's port (so the TLS tests below cannot pass without TLS)."""
    plain = redis.Redis(host="127.0.0.1", port=tls_server.port, socket_connect_timeout=1, socket_timeout=1,
                        retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            plain.ping()
    finally:
        plain.close()


@pytest.mark.parametrize("form", ["host", "url"])
def test_connection__tls(form: str, tls_server: TLSRedisServer, connection_log: pytest.LogCaptureFixture) -> None:
    """Connect over TLS, verifying the server certificate against the configured CA."""
    port, ca = tls_server.port, str(tls_server.certs.ca)
    if form == "url":
        config = {"URL": f"rediss://127.0.0.1:{port}/0", "SSL_CA_CERTS": ca}
    else:
        config = {"HOST": "127.0.0.1", "PORT": port, "SSL": True, "SSL_CA_CERTS": ca}
    with override_settings(QUEUES_REDIS=config):
        client = get_connection()
        assert client.ping() is True
        assert client.set("tls", "yes") is True
        assert client.get("tls") == b"yes"
    assert f"Redis connected (127.0.0.1:{port})" in messages(connection_log, logging.DEBUG)


@pytest.mark.parametrize("form", ["host", "url"])
def test_connection__tls_without_ca_fails(form: str, tls_server: TLSRedisServer,
                                          connection_log: pytest.LogCaptureFixture) -> None:
    """Refuse a server certificate that no trusted CA signed (no SSL_CA_CERTS given)."""
    port = tls_server.port
    config = ({"URL": f"rediss://127.0.0.1:{port}/0", "RETRIES": 0} if form == "url"
              else {"HOST": "127.0.0.1", "PORT": port, "SSL": True, "RETRIES": 0})
    with override_settings(QUEUES_REDIS=config), \
            pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        get_connection().ping()
    assert any(f"Redis connection error (127.0.0.1:{port})" in m and "certificate verify failed" in m
               for m in messages(connection_log, logging.ERROR))


@pytest.mark.parametrize("variables", ["host", "url"])
def test_connection__tls_from_environment(variables: str, tls_server: TLSRedisServer) -> None:
    """Reach the TLS server from the REDIS_* variables alone, through config.settings, in a fresh process."""
    port, ca = tls_server.port, str(tls_server.certs.ca)
    if variables == "url":
        redis_env = {"REDIS_URL": f"rediss://127.0.0.1:{port}/0", "REDIS_TLS_CA_CERTS": ca}
    else:
        redis_env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port), "REDIS_TLS": "true",
                     "REDIS_TLS_CA_CERTS": ca}
    code = (
        "import django; django.setup()\n"
        "from queues.connection import get_connection\n"
        "print(get_connection().ping())\n"
    )
    env = python_env(DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="true", QUEUES_LOG_LEVEL="DEBUG",
                     **redis_env)
    result = run_python(code, env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert f"Redis connected (127.0.0.1:{port})" in result.stderr


# --- logging -----------------------------------------------------------------------------------------------


def test_connection__logs_connected(redis_server: RedisServer, connection_log: pytest.LogCaptureFixture) -> None:
    """Log "Redis connected (host:port)" at DEBUG (a process opens several) when the first command opens the socket,
    and only then."""
    with override_settings(QUEUES_REDIS={"URL": redis_server.url}):
        client = get_connection()
        assert messages(connection_log, logging.DEBUG) == []
        client.ping()
        client.ping()
    assert messages(connection_log, logging.DEBUG) == [f"Redis connected (127.0.0.1:{redis_server.port})"]
    assert messages(connection_log, logging.INFO) == []


def test_connection__logs_connection_error(connection_log: pytest.LogCaptureFixture) -> None:
    """Raise ConnectionError and log "Redis connection error (host:port)" at ERROR when nothing listens."""
    port = free_port()
    with override_settings(QUEUES_REDIS={"URL": f"redis://127.0.0.1:{port}/0", "RETRIES": 0}), \
            pytest.raises(redis.ConnectionError):
        get_connection().ping()
    errors = messages(connection_log, logging.ERROR)
    assert len(errors) == 1
    assert errors[0].startswith(f"Redis connection error (127.0.0.1:{port})")


# --- retries on connection loss --------------------------------------------------------------------------------


def test_connection__web_gives_up_fast() -> None:
    """Give up after a bounded wait in a web process (long enough for a short restart, short enough for a request)."""
    port = free_port()
    with override_settings(QUEUES_REDIS={"URL": f"redis://127.0.0.1:{port}/0"}):
        client = get_connection()
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        waited = time.monotonic() - started
    # The default 3 retries back off 0.1-0.2, 0.2-0.4 and 0.4-0.8 s, and none starts past 60 % of the 2 s TIMEOUT:
    # at least the first two waits (0.3 s), at most 1.2 s.
    assert 0.25 < waited < 2.2, waited


def test_connection__web_survives_a_short_restart(own_server: RedisServer) -> None:
    """Retry a command issued while Redis restarts (0.3 s) in a web process, and succeed once it is back."""
    with override_settings(QUEUES_REDIS={"URL": own_server.url}):
        client = get_connection()
        assert client.ping() is True
        before = client.info("server")["run_id"]
        own_server.stop()
        thread = restart_later(own_server, 0.3)
        started = time.monotonic()
        assert client.echo("back") == b"back"
        waited = time.monotonic() - started
        thread.join(10)
        assert client.info("server")["run_id"] != before  # answered by the restarted server
    assert 0.3 < waited < 3, waited


def test_connection__worker_waits_out_an_outage(own_server: RedisServer) -> None:
    """Block a worker's command through a 2 s outage and complete it once Redis is back."""
    outcome: list[object] = []

    def command() -> None:
        try:
            outcome.append(get_connection(WORKER).echo("still here"))
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    with override_settings(QUEUES_REDIS={"URL": own_server.url}):
        assert get_connection(WORKER).ping() is True
        own_server.stop()
        started = time.monotonic()
        thread = threading.Thread(target=command, daemon=True)
        thread.start()
        time.sleep(2)
        assert thread.is_alive() and outcome == [], outcome  # still waiting, not failed
        own_server.start()
        thread.join(15)
        waited = time.monotonic() - started
        assert not thread.is_alive(), "the worker's command did not complete after Redis came back"
    assert outcome == [b"still here"]
    assert 2 < waited < 15, waited


# --- fork safety -------------------------------------------------------------------------------------------


def test_connection__forked_child_gets_its_own_client() -> None:
    """Give a forked child its own client and socket, and leave the parent's socket working."""
    parent = get_connection()
    parent_id = parent.client_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running any cleanup of the parent's objects
        exit_code = 1
        try:
            os.close(read_end)
            own = get_connection()
            line = f"{own.client_id()} {int(own is parent)} {id(own)} {id(parent)} {parent.client_id()}\n"
            os.write(write_end, line.encode())
            exit_code = 0
        finally:
            os._exit(exit_code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child_id, same_object, own_object_id, parent_object_id, inherited_id = report.split()
    assert int(child_id) != parent_id
    assert same_object == "0"
    assert int(parent_object_id) == id(parent) != int(own_object_id)  # the cache is keyed by pid
    assert int(inherited_id) not in (parent_id, int(child_id))  # the inherited client reconnected as well
    assert parent.client_id() == parent_id  # the parent's socket is untouched and still works
    assert parent.ping() is True


def test_connection__job_process_uses_its_own_socket(redis_client: redis.Redis) -> None:
    """Run a job in the forking worker's job process on a connection of its own, not the worker's."""
    worker_client = get_connection(WORKER)
    worker_id = worker_client.client_id()
    get_queue("email").add(whoami, {"key": "k"})
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        Worker(["email"]).work(burst=True)
    finally:
        for sig, handler in handlers.items():  # RQ installs its own; give pytest back its Ctrl-C
            signal.signal(sig, handler)
    recorded = redis_client.lrange("k", 0, -1)
    assert len(recorded) == 1
    info = dict(ast.literal_eval(recorded[0].decode()))
    assert info["pid"] != os.getpid()
    assert info["client_id"] not in (worker_id, worker_client.client_id(), get_connection().client_id())


# --- a hung Redis (accepts, never answers) ----------------------------------------------------------------------


@contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    """SIGSTOP the server (it keeps accepting connections and never answers), SIGCONT it after."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def timed_add() -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        get_queue("email").add("tests.record", {"key": "k", "value": "v"})
    except redis.RedisError as e:
        return time.monotonic() - started, e
    return time.monotonic() - started, None


@pytest.mark.parametrize("connection", ["open", "new"])
def test_hung_redis__a_web_call_fails_within_the_timeout(own_server: RedisServer, connection: str) -> None:
    """A server that accepts and never answers (SIGSTOP) fails a web process's call within QUEUES_REDIS["TIMEOUT"]
    (default 2 s), retries and health checks included, on an open connection and on a new one."""
    with override_settings(QUEUES_REDIS={"URL": own_server.url}):
        reset_connections()
        get_connection().ping()  # a connection is open (and its health check due later)
        if connection == "new":
            reset_connections()
        with stopped(own_server):
            took, error = timed_add()
        assert isinstance(error, redis.TimeoutError | redis.ConnectionError), error
        assert took <= 2.5, f"add() took {took:.1f} s against a hung Redis"
        took, error = timed_add()  # the server answers again: the next call works at once
        assert error is None and took < 1
        with override_settings(QUEUES_REDIS={"URL": own_server.url, "TIMEOUT": 0.5}), stopped(own_server):
            reset_connections()
            took, error = timed_add()
        assert error is not None and took <= 0.8, took
    reset_connections()


def test_hung_redis__a_restart_within_the_timeout_is_retried(own_server: RedisServer) -> None:
    """The web side still rides out a Redis restart (refused connections retried with backoff) within the bound."""
    with override_settings(QUEUES_REDIS={"URL": own_server.url}):
        reset_connections()
        get_connection().ping()
        own_server.stop()
        restart = restart_later(own_server, 0.2)
        took, error = timed_add()
        restart.join()
        assert error is None, error
        assert took <= 2.0
    reset_connections()
