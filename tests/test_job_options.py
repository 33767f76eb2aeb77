"""Job options with BullMQ's meaning: backoff, delay and run_at, priority, job_id, retention, timeout, on-commit,
UnrecoverableError and permanent errors, add_bulk and the job counts.

Real Redis (the session's own, tests/conftest.py) and real workers: ``manage.py rqworker`` processes where timing
or several workers matter, this app's ``SimpleWorker`` in the test process (burst) where only the outcome does.
No mocks. Jobs leave traces in Redis (tests/testapp/jobs.py) that the tests read.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from queues import InvalidJobData, InvalidJobOptions, get_queue, job
from queues.events import read as read_events
from queues.options import MAX_PRIORITY, Backoff
from queues.worker import SimpleWorker
from tests.conftest import manage, run_manage
from tests.helpers import kill_tree, last_failure, signals_restored, values, wait_for, worker_process
from tests.testapp import jobs

# ---------------------------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def listening_worker(redis_client: redis.Redis, queue: str) -> Iterator[subprocess.Popen]:
    """A non-burst ``manage.py rqworker <queue>``, yielded once it has registered (it is then listening)."""
    with worker_process("rqworker", queue) as proc:
        wait_for(lambda: redis_client.scard(f"rq:workers:{queue}") >= 1, 30, "the worker to register", proc)
        yield proc


def stop(proc: subprocess.Popen, timeout: float = 15) -> tuple[int, str]:
    """SIGTERM the worker (it finishes its job first); its exit code and output."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def run_burst(*queues: str) -> bool:
    """Run this app's SimpleWorker in the test process until the queues are empty; put pytest's signals back."""
    with signals_restored():
        return SimpleWorker(list(queues)).work(burst=True)


def traces(client: redis.Redis, job_id: str) -> list[str]:
    """Every key that names the job, and every list, set, sorted set or hash that still holds its id."""
    found = []
    needle = job_id.encode()
    for key in client.scan_iter(count=1000):
        name = key.decode()
        if job_id in name:
            found.append(name)
            continue
        kind = client.type(key).decode()
        if kind == "list":
            members = client.lrange(key, 0, -1)
        elif kind == "set":
            members = list(client.smembers(key))
        elif kind == "zset":
            members = client.zrange(key, 0, -1)
        elif kind == "hash":
            members = list(client.hgetall(key).values())
        else:
            members = []
        if any(needle in member for member in members):
            found.append(f"{name} ({kind} holding it)")
    return found


def snapshot(client: redis.Redis) -> dict[str, Any]:
    """The whole database, key by key, as comparable Python values (TTLs left out)."""
    readers = {
        "string": client.get,
        "list": lambda k: client.lrange(k, 0, -1),
        "set": client.smembers,
        "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        "hash": client.hgetall,
        "stream": lambda k: client.xrange(k),
    }
    return {key: readers[client.type(key).decode()](key) for key in client.scan_iter(count=1000)}


def queues_setting(**changes: dict[str, Any]) -> dict[str, Any]:
    """``settings.QUEUES`` with the given queues' definitions updated (``default_job_options`` merged)."""
    queues = copy.deepcopy(settings.QUEUES)
    for name, change in changes.items():
        change = dict(change)
        queues[name]["default_job_options"].update(change.pop("default_job_options", {}))
        queues[name].update(change)
    return queues




def retry_due_at(client: redis.Redis, queue: str, job_id: str) -> list[float]:
    """When each retry of the job fell due (its `retrying` events), as POSIX seconds."""
    return [event["due"] for event in read_events(client, queue, 10_000)
            if event["event"] == "retrying" and event["job_id"] == job_id]


# ---------------------------------------------------------------------------------------------------------------
# attempts and backoff (the exponential case is tests/test_worker.py's retry test)


def test_backoff__fixed_number_waits_the_same_delay_before_every_retry(redis_client: redis.Redis) -> None:
    """Retry a job added with backoff=0.5 (a number: fixed) 0.5 s after each failure, in a real worker."""
    with listening_worker(redis_client, "notifications") as proc:
        handle = get_queue("notifications").add(jobs.fail_then_record_times, {"key": "runs", "failures": 2},
                                                attempts=3, backoff=0.5)
        wait_for(lambda: handle.get_state() == "completed", 20, "the job to complete", proc)
        code, out = stop(proc)

    assert code == 0, out
    runs = [float(v) for v in values(redis_client, "runs")]
    assert len(runs) == 3, out
    waits = [b - a for a, b in zip(runs, runs[1:], strict=False)]
    print(f"fixed backoff 0.5 s: runs {waits[0]:.3f} s and {waits[1]:.3f} s apart")
    for wait in waits:
        assert 0.5 <= wait < 1.0


def test_backoff__jitter_takes_off_at_most_its_share_at_random(redis_client: redis.Redis) -> None:
    """Wait between delay*(1-jitter) and delay before a retry, drawn anew for each job."""
    # The strategy itself, many draws: exponential delay 1, jitter 0.5, retry 3 waits within [2, 4].
    draws = [Backoff("exponential", 1.0, 0.5).wait(3) for _ in range(2000)]
    assert 2.0 <= min(draws) < 2.1 and 3.9 < max(draws) <= 4.0
    assert all(Backoff("fixed", 1.0, 0.0).wait(n) == 1.0 for n in range(1, 5))

    # In a worker: five jobs failing once with {"type": "fixed", "delay": 1, "jitter": 0.5}.
    with listening_worker(redis_client, "notifications") as proc:
        queue = get_queue("notifications")
        handles = [queue.add(jobs.fail_then_record_times, {"key": f"runs-{n}", "failures": 1}, attempts=2,
                             backoff={"type": "fixed", "delay": 1, "jitter": 0.5}) for n in range(5)]
        wait_for(lambda: all(h.get_state() == "completed" for h in handles), 20, "the jobs to complete", proc)
        code, out = stop(proc)

    assert code == 0, out
    chosen, waits = [], []
    for n, handle in enumerate(handles):
        runs = [float(v) for v in values(redis_client, f"runs-{n}")]
        assert len(runs) == 2, out
        [scheduled] = retry_due_at(redis_client, "notifications", handle.id)
        chosen.append(scheduled - runs[0])  # the wait drawn (plus the few ms from run start to failure)
        waits.append(runs[1] - runs[0])
    print(f"jitter 0.5 on 1 s: waits drawn {[round(c, 3) for c in chosen]}, runs apart {[round(w, 3) for w in waits]}")
    for drawn, wait in zip(chosen, waits, strict=True):
        assert 0.5 <= drawn < 1.1
        assert drawn <= wait < drawn + 0.5
    assert max(chosen) - min(chosen) > 0.01, "every job drew the same wait: no jitter"


def test_backoff__custom_function_by_dotted_path_gets_attempts_delay_and_error(redis_client: redis.Redis) -> None:
    """Call a backoff function named by its dotted path with (attempts_made, delay, error) and wait what it returns."""
    with listening_worker(redis_client, "notifications") as proc:
        handle = get_queue("notifications").add(
            jobs.fail_then_record_times, {"key": "runs", "failures": 2}, attempts=3,
            backoff={"type": "tests.testapp.backoff.linear_recorded", "delay": 0.3})
        wait_for(lambda: handle.get_state() == "completed", 20, "the job to complete", proc)
        code, out = stop(proc)

    assert code == 0, out
    calls = [json.loads(v) for v in values(redis_client, "backoff-calls")]
    assert calls == [[1, 0.3, "RuntimeError", "failing on purpose, attempt 1"],
                     [2, 0.3, "RuntimeError", "failing on purpose, attempt 2"]]
    runs = [float(v) for v in values(redis_client, "runs")]
    assert len(runs) == 3, out
    waits = [b - a for a, b in zip(runs, runs[1:], strict=False)]
    print(f"custom backoff (0.3 s x attempts_made): runs {waits[0]:.3f} s and {waits[1]:.3f} s apart")
    assert 0.3 <= waits[0] < 0.8
    assert 0.6 <= waits[1] < 1.1


def test_backoff__a_function_named_in_redis_but_not_registered_is_never_called(redis_client: redis.Redis) -> None:
    """Whoever can write to Redis cannot make a worker import and call a function: a job hash naming an
    unregistered backoff function (any dotted path) gets its plain delay instead, and the worker says why."""
    handle = get_queue("notifications").add(jobs.fail_then_record_times, {"key": "runs", "failures": 1}, attempts=2,
                                            backoff={"type": "tests.testapp.backoff.linear_recorded", "delay": 0.2})
    redis_client.hset(f"rq:job:{handle.id}", "backoff", "tests.testapp.backoff.not_a_strategy|0.2|0.0")
    with listening_worker(redis_client, "notifications") as proc:
        wait_for(lambda: handle.get_state() == "completed", 20, "the job to complete", proc)
        code, out = stop(proc)
    assert code == 0, out
    assert values(redis_client, "not-a-strategy-calls") == []
    assert "backoff strategy 'tests.testapp.backoff.not_a_strategy' is not registered" in out
    runs = [float(v) for v in values(redis_client, "runs")]
    assert 0.2 <= runs[1] - runs[0] < 0.7


def test_backoff__a_function_that_is_not_a_registered_strategy_is_refused_at_add(redis_client: redis.Redis) -> None:
    with pytest.raises(InvalidJobOptions, match=r"decorate it with @backoff_strategy"):
        get_queue("notifications").add(jobs.note, {"key": "k", "value": "v"},
                                       backoff={"type": "tests.testapp.backoff.not_a_strategy", "delay": 1})
    assert redis_client.dbsize() == 0


def test_backoff__custom_function_that_cannot_be_imported_is_refused(redis_client: redis.Redis) -> None:
    """Refuse at add() a backoff type that is neither fixed, exponential nor an importable function."""
    with pytest.raises(InvalidJobOptions, match=r"backoff type 'tests.testapp.backoff.nope' cannot be imported"):
        get_queue("notifications").add(jobs.note, {"key": "k", "value": "v"},
                                       backoff={"type": "tests.testapp.backoff.nope", "delay": 1})
    with pytest.raises(InvalidJobOptions, match=r"backoff jitter is the share of each wait .* not 1.5"):
        get_queue("notifications").add(jobs.note, {"key": "k", "value": "v"}, backoff={"delay": 1, "jitter": 1.5})
    assert redis_client.dbsize() == 0


# ---------------------------------------------------------------------------------------------------------------
# UnrecoverableError and permanent errors


def test_unrecoverable_error__fails_the_job_after_one_run_whatever_attempts_are_left(redis_client: redis.Redis) -> None:
    """Fail a job raising UnrecoverableError after its first run, although attempts=5."""
    handle = get_queue("notifications").add(jobs.fail_with, {"key": "runs", "error": "unrecoverable"}, attempts=5,
                                            backoff=0)

    run_burst("notifications")

    assert values(redis_client, "runs") == ["ran"]
    assert handle.get_state() == "failed"
    assert "UnrecoverableError: this job can never succeed" in last_failure(handle.id, "notifications")
    assert redis_client.zrange("rq:failed:notifications", 0, -1) == [handle.id.encode()]
    assert get_queue("notifications").get_job_counts() == {
        "waiting": 0, "prioritized": 0, "delayed": 0, "active": 0, "completed": 0, "failed": 1,
        "paused": 0, "rate_limited": 0}


def test_permanent_errors__listed_error_fails_at_once_and_others_retry(redis_client: redis.Redis) -> None:
    """Fail at once on an error the queue lists in permanent_errors; retry any other error, and it elsewhere."""
    # Retries without a wait go straight back to the queue, so one burst runs every attempt there is.
    not_listed = get_queue("notifications").add(jobs.fail_with, {"key": "not-listed", "error": "permanent"},
                                                attempts=2, backoff=0)
    run_burst("notifications")
    assert values(redis_client, "not-listed") == ["ran", "ran"]
    assert not_listed.get_state() == "failed"

    listed = queues_setting(notifications={"permanent_errors": ["tests.testapp.jobs.SomePermanentError"]})
    with override_settings(QUEUES=listed):
        queue = get_queue("notifications")
        permanent = queue.add(jobs.fail_with, {"key": "permanent", "error": "permanent"}, attempts=3, backoff=0)
        other = queue.add(jobs.fail_with, {"key": "other", "error": "runtime"}, attempts=3, backoff=0)
        run_burst("notifications")

    assert values(redis_client, "permanent") == ["ran"]
    assert permanent.get_state() == "failed"
    assert "SomePermanentError: listed in the queue's permanent_errors" in last_failure(permanent.id, "notifications")
    assert values(redis_client, "other") == ["ran", "ran", "ran"]
    assert other.get_state() == "failed"
    assert "RuntimeError: this may succeed next time" in last_failure(other.id, "notifications")


# ---------------------------------------------------------------------------------------------------------------
# delay and run_at


def test_delay__job_starts_at_its_due_time_not_before_in_a_listening_worker(redis_client: redis.Redis) -> None:
    """Start delayed jobs (delay in seconds or timedelta, or an aware run_at) not before due, within 0.5 s after."""
    with listening_worker(redis_client, "email") as proc:
        time.sleep(0.2)  # let it block on its queue: the adds below must wake it, and it must wait out the delays
        queue = get_queue("email")
        run_at = timezone.now() + timedelta(seconds=1.4)
        added_at = time.time()
        handles = {
            "delay 0.5": queue.add(jobs.record_time, {"key": "starts", "label": "delay 0.5"}, delay=0.5),
            "delay 1.1": queue.add(jobs.record_time, {"key": "starts", "label": "delay 1.1"}, delay=1.1),
            "timedelta 0.8": queue.add(jobs.record_time, {"key": "starts", "label": "timedelta 0.8"},
                                       delay=timedelta(milliseconds=800)),
            "run_at +1.4": queue.add(jobs.record_time, {"key": "starts", "label": "run_at +1.4"}, run_at=run_at),
        }
        added_by = time.time()
        due = {label: redis_client.zscore("rq:scheduled:email", h.id) for label, h in handles.items()}
        for label, delay in (("delay 0.5", 0.5), ("delay 1.1", 1.1), ("timedelta 0.8", 0.8)):
            assert added_at + delay <= due[label] <= added_by + delay
        assert due["run_at +1.4"] == pytest.approx(run_at.timestamp(), abs=1e-6)
        assert {h.get_state() for h in handles.values()} == {"delayed"}
        assert queue.get_job_counts()["delayed"] == 4
        wait_for(lambda: redis_client.llen("starts") == 4, 15, "the delayed jobs to start", proc)
        code, out = stop(proc)

    assert code == 0, out
    started = dict(v.split("|") for v in values(redis_client, "starts"))
    lateness = {label: float(started[label]) - due[label] for label in handles}
    print("delayed jobs started late by " + ", ".join(f"{label}: {late * 1000:.1f} ms"
                                                      for label, late in lateness.items()))
    for label, late in lateness.items():
        assert 0 <= late <= 0.5, f"{label} started {late:+.3f} s from its due time"
    assert [v.split("|")[0] for v in values(redis_client, "starts")] == [
        "delay 0.5", "timedelta 0.8", "delay 1.1", "run_at +1.4"]


def test_run_at__in_the_past_runs_now_and_naive_is_refused(redis_client: redis.Redis) -> None:
    """Run at once a job whose run_at (or delay 0) has passed; refuse a naive or non-datetime run_at."""
    queue = get_queue("email")
    past = queue.add(jobs.record, {"key": "trace", "value": "past"}, run_at=datetime.now(UTC) - timedelta(hours=1))
    zero = queue.add(jobs.record, {"key": "trace", "value": "zero"}, delay=0)
    assert past.get_state() == zero.get_state() == "waiting"
    assert redis_client.zcard("rq:scheduled:email") == 0
    run_burst("email")
    assert values(redis_client, "trace") == ["past", "zero"]

    redis_client.flushall()
    with pytest.raises(InvalidJobOptions, match=r"run_at must be an aware datetime"):
        queue.add(jobs.record, {"key": "trace", "value": "naive"}, run_at=datetime.now() + timedelta(hours=1))
    with pytest.raises(InvalidJobOptions, match=r"run_at must be a datetime, not '2030-01-01T00:00:00Z'"):
        queue.add(jobs.record, {"key": "trace", "value": "text"}, run_at="2030-01-01T00:00:00Z")
    with pytest.raises(InvalidJobOptions, match=r"delay must be 0 or more seconds"):
        queue.add(jobs.record, {"key": "trace", "value": "negative"}, delay=-1)
    with pytest.raises(InvalidJobOptions, match=r"run_at belongs to one job: pass it to add\(\), not as a default"):
        job("email", run_at=timezone.now())
    assert redis_client.dbsize() == 0


def test_delay__delayed_job_with_a_priority_joins_its_band_when_due(redis_client: redis.Redis) -> None:
    """Promote a due delayed job into its priority band, after the jobs already waiting in that band."""
    queue = get_queue("email")

    def add(value: str, **options: Any):
        return queue.add(jobs.record, {"key": "order", "value": value}, **options)

    add("p1", priority=1)
    add("p2 first", priority=2)
    delayed_p2 = add("p2 delayed", priority=2, delay=0.3)
    delayed_none = add("no priority, delayed", delay=0.3)
    add("p3", priority=3)
    add("p2 second", priority=2)
    assert delayed_p2.get_state() == delayed_none.get_state() == "delayed"
    assert queue.get_job_counts() == {
        "waiting": 0, "prioritized": 4, "delayed": 2, "active": 0, "completed": 0, "failed": 0,
        "paused": 0, "rate_limited": 0}

    wait_for(lambda: time.time() > redis_client.zrange("rq:scheduled:email", -1, -1, withscores=True)[0][1],
             5, "the delayed jobs to fall due")
    run_burst("email")

    assert values(redis_client, "order") == ["no priority, delayed", "p1", "p2 first", "p2 second", "p2 delayed", "p3"]


# ---------------------------------------------------------------------------------------------------------------
# priority

# 20 jobs: 6 without a priority (None or 0), the others in bands 1, 2, 3 and the last band there is.
PRIORITIES = [3, None, 1, 2, 0, 1, 3, None, 2, MAX_PRIORITY, 1, None, 3, 2, 1, 0, 2, None, 3, 1]
EXPECTED = sorted(range(len(PRIORITIES)), key=lambda n: PRIORITIES[n] or 0)  # stable: FIFO within a band


def add_mixed_priorities(job: Callable[..., Any], **data: Any) -> list[Any]:
    queue = get_queue("email")
    return [queue.add(job, {**data, ("value" if job is jobs.record else "label"): str(n)},
                      **({} if priority is None else {"priority": priority}))
            for n, priority in enumerate(PRIORITIES)]


def test_priority__one_worker_takes_no_priority_first_then_by_band_fifo_within(redis_client: redis.Redis) -> None:
    """Run 20 jobs of mixed priorities in BullMQ's order: no priority first (FIFO), then 1, 2, 3 ... FIFO in each."""
    handles = add_mixed_priorities(jobs.record, key="order")
    assert get_queue("email").get_job_counts() == {
        "waiting": 6, "prioritized": 14, "delayed": 0, "active": 0, "completed": 0, "failed": 0,
        "paused": 0, "rate_limited": 0}
    assert [h.get_state() for h in handles[:3]] == ["prioritized", "waiting", "prioritized"]

    run_burst("email")

    assert values(redis_client, "order") == [str(n) for n in EXPECTED]


def test_priority__fifo_holds_in_the_last_band(redis_client: redis.Redis) -> None:
    """Keep FIFO among jobs of priority 2_097_152, the largest allowed; refuse one more."""
    queue = get_queue("email")
    for n in range(12):
        queue.add(jobs.record, {"key": "order", "value": str(n)}, priority=MAX_PRIORITY)
    queue.add(jobs.record, {"key": "order", "value": "first of the band before"}, priority=MAX_PRIORITY - 1)

    run_burst("email")

    assert values(redis_client, "order") == ["first of the band before", *(str(n) for n in range(12))]
    with pytest.raises(InvalidJobOptions, match=r"priority must be a whole number from 1 \(first\) to 2,097,152"):
        queue.add(jobs.record, {"key": "order", "value": "x"}, priority=MAX_PRIORITY + 1)


def test_priority__two_workers_take_each_job_once_in_order(redis_client: redis.Redis) -> None:
    """Run 20 jobs of mixed priorities with two rqworker processes: each job once, each worker in order."""
    add_mixed_priorities(jobs.take_turn, key="turns", workers=2, seconds=0.05)

    workers = [manage("rqworker", "email", "--burst") for _ in range(2)]
    try:
        outs = [proc.communicate(timeout=60)[0] for proc in workers]
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill_tree(proc)
    assert [proc.returncode for proc in workers] == [0, 0], outs

    turns = [v.split("|") for v in values(redis_client, "turns")]
    labels = [int(label) for label, _n, _worker in turns]
    assert sorted(labels) == list(range(20)), "a job ran twice, or not at all"
    place = {n: at for at, n in enumerate(EXPECTED)}  # the documented place of each job
    started = {int(label): int(n) for label, n, _worker in turns}  # the order in which the jobs started
    by_worker: dict[str, list[int]] = {}
    for label, _n, worker in sorted(turns, key=lambda t: int(t[1])):
        by_worker.setdefault(worker, []).append(place[int(label)])
    print(f"start order (documented places): {[place[j] for j in sorted(started, key=started.get)]}; "
          f"jobs per worker: {[len(p) for p in by_worker.values()]}")
    assert len(by_worker) == 2, f"one worker took every job: {by_worker}"
    # A worker takes its next job after its current one started: its own jobs are in the documented order.
    for worker, places in by_worker.items():
        assert places == sorted(places), f"worker {worker} took jobs out of order: {places}"
    # Jobs are taken one at a time, in the documented order; when a job starts, every job before it has been
    # taken, and all but at most one (the other worker's job in hand, about to start) have started.
    for n, at in place.items():
        not_started = [other for other in EXPECTED[:at] if started[other] > started[n]]
        assert len(not_started) <= 1, f"job {n} (place {at}) started before {not_started}"


# ---------------------------------------------------------------------------------------------------------------
# job_id


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ({}, {"priority": 1}),
        ({"delay": 60}, {}),
        ({"priority": 5}, {"priority": 1, "delay": 5}),
    ],
    ids=["waiting", "delayed", "prioritized"],
)
def test_job_id__second_add_with_the_same_id_adds_nothing(redis_client: redis.Redis, first: dict, again: dict) -> None:
    """Add nothing for a job_id that exists (waiting, delayed, prioritized) and return the first job."""
    queue = get_queue("email")
    handle = queue.add(jobs.record, {"key": "trace", "value": "first"}, job_id="welcome-42", **first)
    state = handle.get_state()
    before = snapshot(redis_client)

    again_handle = queue.add(jobs.record, {"key": "trace", "value": "second"}, job_id="welcome-42", **again)

    assert snapshot(redis_client) == before
    assert again_handle.id == "welcome-42"
    assert again_handle.data == {"key": "trace", "value": "first"}
    assert again_handle.get_state() == state
    assert sum(queue.get_job_counts().values()) == 1


def test_job_id__adding_an_active_jobs_id_again_adds_nothing(redis_client: redis.Redis) -> None:
    """Add nothing for the id of a job a worker is running; a burst worker finds nothing more to run."""
    queue = get_queue("email")
    handle = queue.add(jobs.slow, {"key": "trace", "seconds": 1.5}, job_id="import-7")
    with worker_process("rqworker", "email", "--burst") as proc:
        wait_for(lambda: values(redis_client, "trace") == ["started"], 20, "the job to start", proc)
        assert handle.get_state() == "active"

        again = queue.add(jobs.slow, {"key": "again", "seconds": 0}, job_id="import-7")

        assert again.data == {"key": "trace", "seconds": 1.5}
        assert again.get_state() == "active"
        assert redis_client.llen("rq:queue:email") == 0
        assert queue.get_job_counts()["active"] == 1
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert values(redis_client, "trace") == ["started", "finished"]
    assert values(redis_client, "again") == []
    # A completed job that is kept still holds its id (BullMQ's behaviour): adding it again adds nothing.
    assert queue.add(jobs.slow, {"key": "again", "seconds": 0}, job_id="import-7").get_state() == "completed"
    assert redis_client.llen("rq:queue:email") == 0


def test_job_id__reusable_once_the_completed_job_is_removed(redis_client: redis.Redis) -> None:
    """Run a second job with an id once the first, added with remove_on_complete=True, has completed."""
    queue = get_queue("email")
    first = queue.add(jobs.record, {"key": "trace", "value": "first"}, job_id="digest-2024-06",
                      remove_on_complete=True)
    run_burst("email")
    assert first.get_state() == "unknown"

    second = queue.add(jobs.record, {"key": "trace", "value": "second"}, job_id="digest-2024-06")

    assert second.data == {"key": "trace", "value": "second"}
    assert second.get_state() == "waiting"
    run_burst("email")
    assert values(redis_client, "trace") == ["first", "second"]


@pytest.mark.parametrize("job_id", ["a:b", "", "x" * 129, 12, "with space", "é", "a/b"])
def test_job_id__invalid_ids_are_refused(redis_client: redis.Redis, job_id: Any) -> None:
    """Refuse an id that is not 1 to 128 letters, digits, '-' or '_'; write nothing."""
    with pytest.raises(InvalidJobOptions, match=r"job_id must be 1 to 128 letters, digits, '-' or '_'"):
        get_queue("email").add(jobs.record, {"key": "k", "value": "v"}, job_id=job_id)
    assert redis_client.dbsize() == 0


def test_job_id__valid_ids_are_kept(redis_client: redis.Redis) -> None:
    """Keep a valid id as given, up to 128 characters."""
    for job_id in ("x" * 128, "A-z_0-9", "7"):
        assert get_queue("email").add(jobs.record, {"key": "k", "value": "v"}, job_id=job_id).id == job_id
    assert redis_client.exists("rq:job:" + "x" * 128) == 1


# ---------------------------------------------------------------------------------------------------------------
# remove_on_complete and remove_on_fail


RETENTION = {
    "remove_on_complete": ("email", jobs.record, {"value": "ok"}, "rq:finished:email", "completed"),
    "remove_on_fail": ("notifications", jobs.fail_with, {"error": "runtime"}, "rq:failed:notifications", "failed"),
}


def add_for_retention(option: str, value: Any, n: int) -> Any:
    queue_name, job, data, _registry, _state = RETENTION[option]
    return get_queue(queue_name).add(job, {"key": "trace", **data}, attempts=1, **{option: value})


@pytest.mark.parametrize("option", RETENTION)
@pytest.mark.parametrize("keep", [3, {"count": 3}])
def test_retention__count_keeps_exactly_the_newest_n(redis_client: redis.Redis, option: str, keep: Any) -> None:
    """Keep the newest 3 of 10 finished jobs; remove the 7 others with their results, leaving nothing behind."""
    queue_name, _job, _data, registry, state = RETENTION[option]
    handles = [add_for_retention(option, keep, n) for n in range(10)]

    run_burst(queue_name)

    assert len(values(redis_client, "trace")) == 10
    assert sorted(redis_client.zrange(registry, 0, -1)) == sorted(h.id.encode() for h in handles[-3:])
    for handle in handles[-3:]:
        assert handle.get_state() == state
        assert redis_client.exists(f"rq:results:{handle.id}") == 1
    for handle in handles[:-3]:
        assert traces(redis_client, handle.id) == [], f"{handle.id} left behind"
        assert handle.get_state() == "unknown"
    assert sorted(k.decode() for k in redis_client.keys("rq:job:*")) == sorted(f"rq:job:{h.id}" for h in handles[-3:])


@pytest.mark.parametrize("option", RETENTION)
def test_retention__age_drops_jobs_older_than_it_and_only_those(redis_client: redis.Redis, option: str) -> None:
    """Keep a finished job while younger than age=2 s, across a change of second; remove it all once older."""
    queue_name, _job, _data, registry, state = RETENTION[option]
    # The first job finishes late in a second, so that the second one finishes 1.6 s later, in the second after
    # next: a trim rounding the age to whole seconds would take the first job then, 0.4 s too soon.
    wait_for(lambda: 0.5 < time.time() % 1 < 0.85, 2, "the second half of a second")
    old = add_for_retention(option, {"age": 2}, 0)
    run_burst(queue_name)
    ended_at = get_queue(queue_name).get_job(old.id).rq_job.ended_at
    finished = ended_at.replace(tzinfo=ended_at.tzinfo or UTC).timestamp()
    assert 0 < redis_client.ttl(f"rq:job:{old.id}") <= 2

    wait_for(lambda: time.time() > finished + 1.6, 3, "the first job to be 1.6 s old")
    young = add_for_retention(option, {"age": 2}, 1)
    run_burst(queue_name)  # its trim takes what is over 2 s old: nothing yet
    assert young.get_state() == state
    assert sorted(redis_client.zrange(registry, 0, -1)) == sorted([old.id.encode(), young.id.encode()])

    wait_for(lambda: time.time() > finished + 2.1, 3, "the first job to be over 2 s old")
    last = add_for_retention(option, {"age": 2}, 2)
    run_burst(queue_name)  # its trim takes the first job, not the second (about 0.5 s old)

    assert traces(redis_client, old.id) == [], f"{old.id} left behind"
    assert last.get_state() == state
    # The second job's entry stays (its hash may have expired meanwhile: RQ's TTL carries the age too).
    assert sorted(redis_client.zrange(registry, 0, -1)) == sorted([young.id.encode(), last.id.encode()])


def test_retention__the_trim_in_a_finish_is_bounded(redis_client: redis.Redis) -> None:
    """Remove at most 100 expired jobs in the step that records one job's end (the rest go with the next ones), so
    a registry with a long backlog of expired jobs never holds Redis for long."""
    stale = time.time() - 10
    for n in range(250):
        redis_client.hset(f"rq:job:stale-{n}", mapping={"status": "finished", "origin": "email"})
        redis_client.zadd("rq:finished:email", {f"stale-{n}": stale})
    queue = get_queue("email")
    for expected in (150, 50, 0):
        queue.add(jobs.add, {"a": 1, "b": 1}, remove_on_complete={"age": 3600})
        run_burst("email")
        left = sum(1 for n in range(250) if redis_client.exists(f"rq:job:stale-{n}"))
        assert left == expected
        assert redis_client.zcount("rq:finished:email", "-inf", stale) == expected


def test_retention__unset_everywhere_is_bounded(redis_client: redis.Redis) -> None:
    """No retention set on the queue, the job or the add: a completed job is kept 7 days among the newest 1,000, a
    failed one 30 days among the newest 10,000 (BullMQ keeps all, which grows Redis without end)."""
    email = copy.deepcopy(settings.QUEUES["email"])
    for option in ("remove_on_complete", "remove_on_fail"):
        email["default_job_options"].pop(option, None)
    with override_settings(QUEUES={**settings.QUEUES, "email": email}):
        done = get_queue("email").add(jobs.add, {"a": 1, "b": 2})
        failed = get_queue("email").add(jobs.fail_on_email, {"reason": "on purpose"}, attempts=1)
        run_burst("email")
    assert (done.get_state(), failed.get_state()) == ("completed", "failed")
    day = 24 * 60 * 60
    assert 7 * day - 60 <= redis_client.ttl(f"rq:job:{done.id}") <= 7 * day
    assert 30 * day - 60 <= redis_client.ttl(f"rq:job:{failed.id}") <= 30 * day
    assert redis_client.hget(f"rq:job:{done.id}", "keep_completed") == b"1000"
    assert redis_client.hget(f"rq:job:{failed.id}", "keep_failed") == b"10000"


@pytest.mark.parametrize("option", RETENTION)
def test_retention__true_removes_at_once(redis_client: redis.Redis, option: str) -> None:
    """Remove a job added with True as soon as it finishes: hash, results and registry entry."""
    queue_name, _job, _data, registry, _state = RETENTION[option]
    handle = add_for_retention(option, True, 0)

    run_burst(queue_name)

    assert values(redis_client, "trace") != []
    assert handle.get_state() == "unknown"
    assert redis_client.zcard(registry) == 0
    assert traces(redis_client, handle.id) == [], f"{handle.id} left behind"


def test_retention__false_keeps_and_the_other_outcome_is_not_trimmed(redis_client: redis.Redis) -> None:
    """Keep every job with False, and apply remove_on_fail only to failed jobs, remove_on_complete to completed."""
    email = get_queue("email")
    kept = [email.add(jobs.record, {"key": "trace", "value": str(n)}, remove_on_complete=False, remove_on_fail=True)
            for n in range(4)]
    run_burst("email")
    assert sorted(redis_client.zrange("rq:finished:email", 0, -1)) == sorted(h.id.encode() for h in kept)
    assert redis_client.ttl(f"rq:job:{kept[0].id}") == -1  # no expiry

    failed = [get_queue("notifications").add(jobs.fail_with, {"key": "f", "error": "runtime"}, attempts=1,
                                             remove_on_fail=False, remove_on_complete=True) for _ in range(4)]
    run_burst("notifications")
    assert {h.get_state() for h in failed} == {"failed"}
    assert redis_client.zcard("rq:failed:notifications") == 4


# ---------------------------------------------------------------------------------------------------------------
# timeout


def test_timeout__per_job_and_queue_default_stop_a_long_run(redis_client: redis.Redis) -> None:
    """Fail a run longer than its timeout (per job, or the queue's default) with RQ's timeout error."""
    email = get_queue("email")  # default timeout 60 s
    per_job = email.add(jobs.slow, {"key": "per-job", "seconds": 3}, timeout=1, attempts=1)
    with override_settings(QUEUES=queues_setting(email={"default_job_options": {"timeout": 1}})):
        by_queue = get_queue("email").add(jobs.slow, {"key": "by-queue", "seconds": 3}, attempts=1)
        longer = get_queue("email").add(jobs.slow, {"key": "longer", "seconds": 1.2}, timeout=timedelta(seconds=3),
                                        attempts=1)

    result = run_manage("rqworker", "email", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    for handle, key in ((per_job, "per-job"), (by_queue, "by-queue")):
        assert handle.get_state() == "failed"
        failure = last_failure(handle.id, "email")
        assert "JobTimeoutException" in failure
        assert "Task exceeded maximum timeout value (1 seconds)" in failure
        # A thread cannot be stopped: in "threads" mode the job is failed at its timeout and its function runs on to
        # its end, its result ignored (README, "Running workers").
        threads = os.environ.get("QUEUES_TEST_MODE") == "threads"
        assert values(redis_client, key) == (["started", "finished"] if threads else ["started"])
    assert longer.get_state() == "completed"
    assert values(redis_client, "longer") == ["started", "finished"]


# ---------------------------------------------------------------------------------------------------------------
# on commit


class Rollback(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_on_commit__delayed_prioritized_and_bulk_jobs_are_written_at_commit(redis_client: redis.Redis) -> None:
    """Return handles at once inside atomic() and write waiting, delayed, prioritized and bulk jobs on commit."""
    queue = get_queue("email")
    with transaction.atomic():
        waiting = queue.add(jobs.record, {"key": "k", "value": "w"})
        delayed = queue.add(jobs.record, {"key": "k", "value": "d"}, delay=60)
        prioritized = queue.add(jobs.record, {"key": "k", "value": "p"}, priority=2)
        bulk = queue.add_bulk([{"job": jobs.record, "data": {"key": "k", "value": "b1"}},
                               {"job": jobs.record, "data": {"key": "k", "value": "b2"}, "options": {"priority": 1}}])
        assert all(h.id for h in [waiting, delayed, prioritized, *bulk])
        assert redis_client.dbsize() == 0

    assert [waiting.get_state(), delayed.get_state(), prioritized.get_state()] == ["waiting", "delayed", "prioritized"]
    assert [h.get_state() for h in bulk] == ["waiting", "prioritized"]
    assert queue.get_job_counts() == {
        "waiting": 2, "prioritized": 2, "delayed": 1, "active": 0, "completed": 0, "failed": 0,
        "paused": 0, "rate_limited": 0}


@pytest.mark.django_db(transaction=True)
def test_on_commit__rollback_writes_nothing(redis_client: redis.Redis) -> None:
    """Write nothing for jobs added in a transaction, or a savepoint, that rolls back."""
    queue = get_queue("email")
    with pytest.raises(Rollback), transaction.atomic():
        queue.add(jobs.record, {"key": "k", "value": "w"})
        queue.add(jobs.record, {"key": "k", "value": "d"}, delay=60)
        queue.add(jobs.record, {"key": "k", "value": "p"}, priority=2, job_id="rolled-back")
        queue.add_bulk([{"job": jobs.record, "data": {"key": "k", "value": "b"}}])
        raise Rollback
    assert redis_client.dbsize() == 0

    with transaction.atomic():
        kept = queue.add(jobs.record, {"key": "k", "value": "kept"}, priority=3)
        with pytest.raises(Rollback), transaction.atomic():
            queue.add(jobs.record, {"key": "k", "value": "savepoint"}, delay=60)
            raise Rollback
    assert queue.get_job_counts() == {
        "waiting": 0, "prioritized": 1, "delayed": 0, "active": 0, "completed": 0, "failed": 0,
        "paused": 0, "rate_limited": 0}
    assert kept.get_state() == "prioritized"
    assert queue.get_job("rolled-back") is None


# ---------------------------------------------------------------------------------------------------------------
# add_bulk


def test_add_bulk__a_hundred_jobs_with_their_own_options_in_one_script_call(redis_client: redis.Redis) -> None:
    """Add 100 jobs, each with its own options, in one EVALSHA; each lands where its options say."""
    queue = get_queue("email")
    queue.add(jobs.add, {"a": 0, "b": 0})  # the connection and the script ready, as in a running process
    redis_client.config_resetstat()
    specs = []
    for n in range(100):
        options: dict[str, Any] = {"job_id": f"bulk-{n}", "attempts": n % 3 + 1}
        if n % 4 == 1:
            options["priority"] = n % 7 + 1
        elif n % 4 == 2:
            options["delay"] = 60 + n
        elif n % 4 == 3:
            options["remove_on_complete"] = True
            options["timeout"] = 5 + n
        specs.append({"job": jobs.add, "data": {"a": n, "b": 1}, "options": options})
    added_at = time.time()

    handles = queue.add_bulk(specs)

    stats = redis_client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}
    print(f"commands during add_bulk (with those the script ran): {calls}")
    assert calls.get("evalsha") == 1
    assert "eval" not in calls and "multi" not in calls and calls.get("script|load", 0) <= 1
    assert [h.id for h in handles] == [f"bulk-{n}" for n in range(100)]
    assert queue.get_job_counts() == {
        "waiting": 1 + 50, "prioritized": 25, "delayed": 25, "active": 0, "completed": 0, "failed": 0,
        "paused": 0, "rate_limited": 0}
    for n, handle in enumerate(handles):
        fields = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"rq:job:bulk-{n}").items() if k != b"data"}
        assert handle.data == {"a": n, "b": 1}
        assert fields.get("retries_left") == (None if n % 3 == 0 else str(n % 3))
        assert handle.get_state() == ["waiting", "prioritized", "delayed", "waiting"][n % 4]
        if n % 4 == 1:
            assert fields["priority"] == str(n % 7 + 1)
        elif n % 4 == 2:
            due = redis_client.zscore("rq:scheduled:email", f"bulk-{n}")
            assert added_at + 60 + n <= due < added_at + 60 + n + 1
        elif n % 4 == 3:
            assert (fields["result_ttl"], fields["timeout"]) == ("0", str(5 + n))
        else:
            assert (fields["result_ttl"], fields["timeout"]) == ("86400", "60")  # the queue's defaults


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ({"data": {"a": 1, "b": datetime(2026, 1, 1, tzinfo=UTC)}}, InvalidJobData,
         r"item 57.*data\['b'\] is a datetime: pass value.isoformat\(\)"),
        ({"options": {"priority": -1}}, InvalidJobOptions, r"item 57.*priority must be a whole number"),
        ({"options": {"atempts": 2}}, InvalidJobOptions, r"item 57.*unknown job option 'atempts'"),
        ({"options": {"job_id": "a:b"}}, InvalidJobOptions, r"item 57.*job_id must be 1 to 128"),
        ({"job": jobs.note}, InvalidJobOptions, r"item 57.*belongs to queue 'notifications'"),
        ({"extra": 1}, InvalidJobOptions, r"item 57.*unknown key\(s\) \['extra'\]"),
    ],
    ids=["data", "priority", "unknown-option", "job_id", "other-queue", "unknown-key"],
)
def test_add_bulk__one_bad_item_refuses_the_batch_naming_it(redis_client: redis.Redis, bad: dict, error: type,
                                                            message: str) -> None:
    """Refuse the whole batch for one bad item (the 58th), naming it, before anything is written."""
    specs: list[dict[str, Any]] = [{"job": jobs.add, "data": {"a": n, "b": 1}, "options": {"priority": n % 3}}
                                   for n in range(100)]
    specs[57] = {**specs[57], **bad}

    with pytest.raises(error, match=message):
        get_queue("email").add_bulk(specs)

    assert redis_client.dbsize() == 0


def test_add_bulk__duplicate_ids_in_one_batch_add_the_first(redis_client: redis.Redis) -> None:
    """Add only the first of two items with the same job_id in a batch; both handles are that job."""
    handles = get_queue("email").add_bulk([
        {"job": jobs.record, "data": {"key": "k", "value": "first"}, "options": {"job_id": "same"}},
        {"job": jobs.record, "data": {"key": "k", "value": "second"}, "options": {"job_id": "same", "priority": 1}},
    ])
    assert [h.data["value"] for h in handles] == ["first", "first"]
    assert redis_client.llen("rq:queue:email") == 1
    assert redis_client.zcard("rq:prioritized:email") == 0


# ---------------------------------------------------------------------------------------------------------------
# get_job_counts


def test_get_job_counts__counts_every_state(redis_client: redis.Redis) -> None:
    """Count waiting, prioritized, delayed, active, completed and failed jobs of a queue, each apart."""
    queue = get_queue("email")
    queue.add(jobs.add, {"a": 1, "b": 1})
    queue.add(jobs.add, {"a": 2, "b": 2})
    queue.add(jobs.add, {"a": 3}, attempts=1)  # a TypeError: fails
    run_burst("email")
    assert queue.get_job_counts() == {
        "waiting": 0, "prioritized": 0, "delayed": 0, "active": 0, "completed": 2, "failed": 1,
        "paused": 0, "rate_limited": 0}

    with listening_worker(redis_client, "email") as proc:
        active = queue.add(jobs.slow, {"key": "trace", "seconds": 1.5})
        wait_for(lambda: values(redis_client, "trace") == ["started"], 20, "the job to start", proc)
        for n in range(2):
            queue.add(jobs.add, {"a": n, "b": 0})
        for n in range(3):
            queue.add(jobs.add, {"a": n, "b": 0}, priority=n + 1)
        delayed = queue.add(jobs.add, {"a": 9, "b": 9}, delay=60)

        counts = queue.get_job_counts()
        state = active.get_state()
        code, out = stop(proc)  # after its running job, before the next

    assert code == 0, out
    assert counts == {"waiting": 2, "prioritized": 3, "delayed": 1, "active": 1, "completed": 2, "failed": 1,
                      "paused": 0, "rate_limited": 0}
    assert state == "active"
    assert delayed.get_state() == "delayed"
    assert queue.get_job_counts() == {
        "waiting": 2, "prioritized": 3, "delayed": 1, "active": 0, "completed": 3, "failed": 1,
        "paused": 0, "rate_limited": 0}
