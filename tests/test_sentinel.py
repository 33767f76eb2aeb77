"""Sentinel failover: a primary, a replica and a Sentinel the test starts; the primary SIGKILLed under load. The web
side, the workers and django-rq follow the new primary by themselves (issue 13's fault suite)."""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import override_settings

from config.redis_server import RedisServer, free_port, server_binary
from queues import get_queue
from queues.connection import reset_connections
from tests.conftest import manage_env
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(240)
MASTER = "queues-primary"


class Sentinel:
    """``redis-server --sentinel`` watching ``primary`` (a quorum of one), on a free port."""

    def __init__(self, directory: Path, primary: RedisServer) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n")
        self.process = subprocess.Popen([server_binary(), str(self.config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        wait_for(lambda: self._answers(client), 10, "the sentinel")

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        return int(redis.Redis(port=self.port).sentinel_get_master_addr_by_name(MASTER)[1])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(params=[0, 1], ids=["async", "min-replicas-to-write-1"])
def replicated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, Sentinel]]:
    """A primary (refusing writes without a replica within 1 s for ``min-replicas-to-write-1``), its replica, and a
    Sentinel; QUEUES_REDIS asks the Sentinel for the primary."""
    extra = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "1") if request.param else ()
    primary = RedisServer(tmp_path / "primary", extra_args=extra).start()
    replica = RedisServer(tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(primary.port))).start()
    wait_for(lambda: redis.Redis(port=replica.port).info("replication")["master_link_status"] == "up", 15,
             "the replica to sync")
    sentinel = Sentinel(tmp_path / "sentinel", primary)
    wait_for(lambda: redis.Redis(port=sentinel.port).sentinel_master(MASTER)["num-slaves"] >= 1, 15,
             "the sentinel to see the replica")
    try:
        with override_settings(QUEUES_REDIS={"SENTINELS": [("127.0.0.1", sentinel.port)], "SENTINEL_MASTER": MASTER}):
            reset_connections()
            yield primary, replica, sentinel
    finally:
        reset_connections()
        sentinel.stop()
        replica.stop()
        primary.stop()


def test_sentinel__the_primary_killed_under_load__producers_and_workers_follow_the_new_primary(
        replicated, workers, tmp_path: Path) -> None:
    primary, replica, sentinel = replicated
    trace = tmp_path / "trace.txt"
    env = manage_env(REDIS_URL="", REDIS_SENTINELS=f"127.0.0.1:{sentinel.port}", REDIS_SENTINEL_MASTER=MASTER)
    procs = [workers.start("rqworker", "email", env=env) for _ in range(2)]
    wait_for(lambda: redis.Redis(port=primary.port).scard("rq:workers:email") >= 2, 30, "two workers", procs)

    acknowledged: list[tuple[str, float]] = []
    refused = 0
    done = threading.Event()

    def produce() -> None:
        nonlocal refused
        n = 0
        while not done.is_set():
            n += 1
            try:
                job = get_queue("email").add("tests.append_line", {"path": str(trace), "line": f"job-{n}"},
                                             job_id=f"job-{n}")
            except redis.RedisError:
                refused += 1
            else:
                acknowledged.append((job.id, time.monotonic()))
            time.sleep(0.01)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(2)
    killed_at = time.monotonic()
    primary.process.send_signal(signal.SIGKILL)
    primary.process.wait()
    wait_for(lambda: sentinel.master_port() == replica.port, 30, "the failover")
    failover = time.monotonic() - killed_at
    time.sleep(3)  # the producer goes on against the new primary
    done.set()
    producer.join()

    after = {job_id for job_id, at in acknowledged if at > killed_at + failover + 1}
    assert after, "nothing was acknowledged after the failover"

    def ran() -> collections.Counter[str]:
        return collections.Counter(trace.read_text().split()) if trace.exists() else collections.Counter()

    wait_for(lambda: after <= set(ran()), 60, "the jobs added after the failover to run", procs)
    time.sleep(1)
    counts = ran()
    lost = {job_id for job_id, _ in acknowledged} - set(counts)
    twice = {job_id: n for job_id, n in counts.items() if n > 1}
    print(f"sentinel failover in {failover:.1f} s: {len(acknowledged)} acknowledged, {refused} refused during it, "
          f"{len(counts)} ran, {len(twice)} twice, {len(lost)} lost (acknowledged by the old primary, not replicated "
          f"before its kill): {sorted(lost)[:5]}")
    assert not twice, twice
    assert all(proc.poll() is None for proc in procs)
    assert get_queue("email").get_job_counts()["waiting"] == 0

    import django_rq

    from queues.dashboard import connection_label

    assert django_rq.get_connection("email").ping()  # django-rq's pages follow it too
    assert connection_label() == f"primary {MASTER!r} of Sentinel 127.0.0.1:{sentinel.port} db 0"
