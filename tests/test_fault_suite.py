"""The worst day, with real processes and a Redis server the test starts, stops and kills (issue 13's fault suite).

Each test drives real ``manage.py rqworker`` processes and a producer adding jobs through the web side's API, injects
the fault, and then counts from a trace that lives outside Redis (a file each job appends its id to): every job
whose ``add()`` returned must have run exactly once. The figures each prints go to docs/reliability.md.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import override_settings

from config.redis_server import RedisServer
from queues import get_queue
from queues.connection import reset_connections
from tests.conftest import manage_env
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def durable_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone, append-only with ``appendfsync everysec`` (a common production setting)."""
    server = RedisServer(tmp_path / "redis", extra_args=("--appendonly", "yes", "--appendfsync", "everysec")).start()
    try:
        with override_settings(QUEUES_REDIS={"URL": server.url}):
            reset_connections()
            yield server
    finally:
        reset_connections()
        server.stop()


class Producer(threading.Thread):
    """Adds jobs as a web process does until stopped; remembers the ids whose add() returned (acknowledged)."""

    def __init__(self, trace: Path) -> None:
        super().__init__(daemon=True)
        self.trace = trace
        self.acknowledged: list[str] = []
        self.refused = 0
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.is_set():
            n += 1
            try:
                job = get_queue("email").add("tests.append_line", {"path": str(self.trace), "line": f"job-{n}"},
                                             job_id=f"job-{n}")
            except redis.RedisError:
                self.refused += 1  # not acknowledged: the caller knows it failed
            else:
                self.acknowledged.append(job.id)
            time.sleep(0.01)


def ran(trace: Path) -> collections.Counter[str]:
    return collections.Counter(trace.read_text().split()) if trace.exists() else collections.Counter()


def test_redis_restarted_twice_and_killed_once_under_load__every_acknowledged_job_runs_once(
        durable_server: RedisServer, workers, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    env = manage_env(REDIS_URL=durable_server.url)
    procs = [workers.start("rqworker", "email", env=env) for _ in range(2)]
    client = redis.Redis.from_url(durable_server.url)
    wait_for(lambda: client.scard("rq:workers") >= 2, 30, "two workers", procs)

    producer = Producer(trace)
    producer.start()
    outages = []
    for how in ("restart", "restart", "SIGKILL"):
        time.sleep(2)
        started = time.monotonic()
        if how == "SIGKILL":
            durable_server.process.send_signal(signal.SIGKILL)
            durable_server.process.wait()
        else:
            durable_server.stop()
        durable_server.start()  # same port, same append-only file
        outages.append((how, time.monotonic() - started))
    time.sleep(2)
    producer.done.set()
    producer.join()

    acknowledged = set(producer.acknowledged)
    wait_for(lambda: acknowledged <= set(ran(trace)), 60, "every acknowledged job to run", procs)
    counts = ran(trace)
    twice = {job_id: n for job_id, n in counts.items() if n > 1}
    lost = acknowledged - set(counts)
    print(f"fault suite: redis {outages}; {len(acknowledged)} jobs acknowledged, {producer.refused} adds refused, "
          f"{len(counts)} ran, {len(twice)} twice, {len(lost)} lost")
    assert not lost, sorted(lost)[:10]
    assert not twice, twice
    assert all(proc.poll() is None for proc in procs)  # the workers rode it out, no operator step


@pytest.mark.parametrize("outage", ["restart", "stop"])
def test_redis_away_longer_than_the_stalled_interval__a_running_job_is_not_run_twice_at_once(
        durable_server: RedisServer, workers, tmp_path: Path, outage: str) -> None:
    """The "stalls" queue locks a job for 2 s (stalled_interval 3 s). Redis goes away for 5 s while the job runs
    (restarted after, or SIGSTOPped and continued): every worker lost it, so none may take the other's job as
    stalled before its owner had the time to extend the lock again."""
    trace = tmp_path / "trace.txt"
    env = manage_env(REDIS_URL=durable_server.url)
    procs = [workers.start("rqworker", "stalls", env=env) for _ in range(2)]
    client = redis.Redis.from_url(durable_server.url)
    wait_for(lambda: client.scard("rq:workers") >= 2, 30, "two workers", procs)
    job = get_queue("stalls").add("tests.slow_trace", {"path": str(trace), "seconds": 9})
    wait_for(lambda: "start" in (trace.read_text() if trace.exists() else ""), 15, "the job to start", procs)

    if outage == "restart":
        durable_server.stop()
        time.sleep(5)
        durable_server.start()
    else:
        durable_server.process.send_signal(signal.SIGSTOP)
        time.sleep(5)
        durable_server.process.send_signal(signal.SIGCONT)
    wait_for(lambda: "end" in trace.read_text(), 30, "the job to end", procs)
    time.sleep(3)  # a second run, had one started after the outage, would have started by now
    lines = trace.read_text().split("\n")
    starts = [line for line in lines if line.startswith("start")]
    print(f"fault suite: redis {outage} 5 s during a 9 s job: {len(starts)} start(s): {lines}")
    assert len(starts) == 1, lines
    assert get_queue("stalls").get_job(job.id).get_state() == "completed"
