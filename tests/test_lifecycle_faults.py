"""The job lifecycle under faults, with real worker processes and the session's own Redis (issue 11).

A queue's first promise is never to lose or double a job it acknowledged. Every test here runs in each execution
mode (``QUEUES_TEST_MODE`` for the worker processes, tests/settings.py) on the "stalls" queue (stalled_interval 3 s:
a lock of 2 s, extended every second; max_stalled_count 1), and injects the fault into real processes: SIGKILL of
whole worker trees, a worker killed between its take and its run (a test-only pause,
``QUEUES_TEST_PAUSE_AFTER_TAKE``), a reply lost after the script ran (``QUEUES_TEST_LOSE_REPLY``), a worker frozen
past its lock (SIGSTOP).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter

import psutil
import pytest
import redis
from rq.registry import StartedJobRegistry

from queues import get_queue
from queues.events import read
from queues.scripts import QueueKeys
from tests.conftest import manage_env
from tests.helpers import Workers, kill_tree, output, values, wait_for
from tests.test_worker_controls import wait_listening
from tests.testapp import jobs

KEYS = QueueKeys.of("stalls")


def start(workers: Workers, mode: str, *args: str, **env: str) -> subprocess.Popen:
    return workers.start("rqworker", "stalls", *args, env=manage_env(QUEUES_TEST_MODE=mode, **env))


def events(client: redis.Redis, name: str) -> list[dict]:
    return [event for event in read(client, "stalls", 1_000_000) if event["event"] == name]


def tree(proc: subprocess.Popen) -> list[psutil.Process]:
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


def test_faults__sigkill_of_worker_trees_at_random_loses_and_doubles_no_job(redis_client: redis.Redis, mode: str,
                                                                           workers: Workers) -> None:
    """SIGKILL a whole worker tree 10 times at random while 2,000 short jobs flow through two workers: every job ends
    completed exactly once (one `completed` event, counted once) or failed by the stall policy; none is lost."""
    procs = [start(workers, mode), start(workers, mode)]
    wait_listening(redis_client, "stalls", procs)
    queue = get_queue("stalls")
    handles = []
    for _ in range(20):
        handles += queue.add_bulk([{"job": jobs.flow, "data": {"key": "runs", "seconds": 0.01}} for _ in range(100)])
    rng = random.Random(11)  # noqa: S311 - when to kill, not security
    kills = 0
    deadline = time.monotonic() + 120
    while kills < 10 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 1.5))
        victim = procs.pop(rng.randrange(len(procs)))
        kill_tree(victim)
        victim.wait(timeout=10)
        kills += 1
        procs.append(start(workers, mode))
    assert kills == 10

    def ended() -> bool:
        counts = queue.get_job_counts()
        return counts["completed"] + counts["failed"] == len(handles)

    wait_for(ended, 90, "every job to end (completed or failed)", procs)
    completed_ids = [event["job_id"] for event in events(redis_client, "completed")]
    counts = queue.get_job_counts()
    states = Counter(handle.get_state() for handle in handles)
    runs = Counter(values(redis_client, "runs"))
    stalled = events(redis_client, "stalled")
    print(f"{mode}: {kills} kills; states {dict(states)}; {len(stalled)} stalls; {sum(runs.values())} runs of "
          f"{len(handles)} jobs ({sum(1 for n in runs.values() if n > 1)} ran more than once)")
    assert states["completed"] + states["failed"] == len(handles)  # none lost
    assert len(completed_ids) == len(set(completed_ids)) == states["completed"]  # none doubled
    assert queue.get_metrics("completed")["total"] == states["completed"]
    assert all(runs[handle.id] >= 1 for handle in handles if handle.get_state() == "completed")
    for handle in handles:
        if handle.get_state() == "failed":
            assert "stalled more than allowable limit" in handle.rq_job.latest_result().exc_string
    assert (counts["waiting"], counts["active"], redis_client.zcard(KEYS.active)) == (0, 0, 0)


def test_faults__worker_killed_between_take_and_run_job_is_recovered(redis_client: redis.Redis, mode: str,
                                                                     workers: Workers) -> None:
    """SIGKILL a worker right after its take (before the run): the job is active under its lock, RQ's own registry
    cleanup leaves it alone, and another worker recovers it as stalled, spending no attempt, and runs it once."""
    first = start(workers, mode, QUEUES_TEST_PAUSE_AFTER_TAKE="60")
    wait_listening(redis_client, "stalls", [first])
    handle = get_queue("stalls").add(jobs.flow, {"key": "runs"}, attempts=3)
    wait_for(lambda: values(redis_client, "queues:test:taken") == [handle.id], 20, "the take", first)
    assert handle.get_state() == "active"
    assert redis_client.zcard(KEYS.active) == 1
    kill_tree(first)
    first.wait(timeout=10)
    killed_at = time.time()

    # Past the lock, before any worker looks: RQ's cleanup (run by `rq info` and django-rq's pages) must not fail it.
    wait_for(lambda: redis_client.zrangebyscore(KEYS.active, 0, time.time()), 5, "the lock to run out")
    StartedJobRegistry("stalls", connection=redis_client).get_job_ids()  # runs RQ's cleanup
    assert handle.get_state() == "active"

    second = start(workers, mode)
    wait_for(lambda: handle.get_state() == "completed", 20, "the job to be recovered and run", second)
    assert values(redis_client, "runs") == [handle.id]  # the killed worker never ran it
    [stall] = events(redis_client, "stalled")
    print(f"{mode}: recovered {float(stall['id'].split('-')[0]) / 1000 - killed_at:.2f} s after the kill")
    assert (stall["job_id"], stall["stalled_count"], stall["failed"]) == (handle.id, 1, 0)
    job = get_queue("stalls").get_job(handle.id)
    assert job.attempts_made == 1 and job.rq_job.retries_left == 2  # the stall spent no attempt
    assert "AbandonedJobError" not in output(first) + output(second)
    assert redis_client.zcard(KEYS.active) == 0


@pytest.mark.parametrize("lost", ["take", "finish"])
def test_faults__a_lost_reply_neither_loses_nor_doubles_a_job(redis_client: redis.Redis, mode: str, lost: str,
                                                              workers: Workers) -> None:
    """Lose the reply to a worker's first take (or first finish, which takes the next job) after the script ran in
    Redis: the worker sends it again and gets back the job it took; every job runs once, none is left active."""
    queue = get_queue("stalls")
    handles = [queue.add(jobs.flow, {"key": "runs"}) for _ in range(5)]
    proc = start(workers, mode, QUEUES_TEST_LOSE_REPLY=lost)
    wait_for(lambda: queue.get_job_counts()["completed"] == 5, 20, "the five jobs to complete", proc)
    time.sleep(4)  # past a lock: a job stranded by the lost reply would now show as a stall
    log = output(proc)
    assert f"the reply to this {lost} call was lost" in log
    assert sorted(values(redis_client, "runs")) == sorted(handle.id for handle in handles)  # each once
    assert [event["job_id"] for event in events(redis_client, "completed")].count(handles[0].id) == 1
    assert events(redis_client, "stalled") == []
    assert "Missing lock" not in log
    assert redis_client.zcard(KEYS.active) == 0


def test_faults__worker_frozen_past_its_lock_cannot_write_its_late_outcome(redis_client: redis.Redis, mode: str,
                                                                           workers: Workers) -> None:
    """SIGSTOP a worker mid-job past its lock: another worker reruns the job; when the first wakes and its run ends,
    its finish is refused ("Missing lock"): one `completed` event, metrics count 1, the second run's result."""
    first = start(workers, mode, "--name", "frozen")
    wait_listening(redis_client, "stalls", [first])
    handle = get_queue("stalls").add(jobs.fenced, {"key": "runs", "seconds": 2})
    wait_for(lambda: redis_client.llen("runs") == 1, 20, "the first run to start", first)
    frozen = tree(first)
    for process in frozen:
        process.send_signal(signal.SIGSTOP)
    try:
        second = start(workers, mode, "--name", "rescuer")
        wait_for(lambda: handle.get_state() == "completed", 20, "the job to rerun elsewhere and complete", second)
    finally:
        for process in frozen:
            process.send_signal(signal.SIGCONT)
    wait_for(lambda: redis_client.llen("runs:done") == 2, 20, "the frozen run to end too", first)
    wait_for(lambda: "Missing lock" in output(first), 10, "the frozen worker's refused finish", first)

    assert [run.split("|")[0] for run in values(redis_client, "runs")] == ["frozen", "rescuer"]
    assert [event["job_id"] for event in events(redis_client, "completed")] == [handle.id]
    assert get_queue("stalls").get_metrics("completed")["total"] == 1
    job = get_queue("stalls").get_job(handle.id)
    assert job.rq_job.return_value() == "rescuer"  # the late outcome did not overwrite the rerun's
    assert handle.get_state() == "completed"
    assert redis_client.zcard(KEYS.active) == 0



def test_faults__a_worker_stops_on_sigterm_while_redis_is_down(tmp_path, mode: str, workers: Workers) -> None:
    """SIGTERM a worker whose Redis has gone away: it stops at once (exit 0) instead of waiting for Redis for ever."""
    from config.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        proc = workers.start("rqworker", "email", env=manage_env(QUEUES_TEST_MODE=mode, REDIS_URL=server.url))
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: client.scard("rq:workers:email") == 1, 30, "the worker to register", proc)
        client.close()
    finally:
        server.stop()
    time.sleep(2)  # the worker notices on its next idle wait (at most a second)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    proc.wait(timeout=20)
    took = time.monotonic() - sent
    print(f"{mode}: exited {proc.returncode} {took:.1f} s after SIGTERM, Redis down")
    assert proc.returncode == 0, output(proc)
    assert took < 5
