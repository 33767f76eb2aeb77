"""Queue management (issue 7, the API): counts, listing jobs by state, retry, remove, clean, drain, obliterate.

Real Redis (the session's own, tests/conftest.py) and real workers: this app's ``SimpleWorker`` in the test process
(burst) where only the outcome matters, ``manage.py rqworker`` processes where a job must be running meanwhile.
Every removal is checked against the whole server: no key and no list or set member may still name a removed job.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from queues import InvalidJobOptions, QueueBusy, get_queue
from queues.events import read
from queues.worker import SimpleWorker
from tests.helpers import signals_restored, values, wait_for, worker_process
from tests.testapp import jobs

# --- helpers ----------------------------------------------------------------------------------------------------


def run_burst(*queues: str) -> None:
    """Run this app's SimpleWorker in the test process until the queues are empty."""
    with signals_restored():
        SimpleWorker(list(queues)).work(burst=True)


def mentions(client: redis.Redis, ids: Iterable[str]) -> list[str]:
    """Every key, list item and sorted-set member on the server that names one of ``ids``."""
    ids = list(ids)
    found = []
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        kind = client.type(key).decode()
        members = []
        if kind == "list":
            members = client.lrange(key, 0, -1)
        elif kind in ("zset", "set"):
            members = client.zrange(key, 0, -1) if kind == "zset" else list(client.smembers(key))
        found += [key for job_id in ids if job_id in key]
        found += [f"{key} ∋ {m.decode()}" for m in members for job_id in ids if job_id in m.decode()]
    return found


def finished(queue: str, n: int, key: str = "done") -> list[str]:
    """Add ``n`` jobs to ``queue`` (email or notifications) and run them to completion; their ids."""
    job = jobs.record if queue == "email" else jobs.note
    ids = [get_queue(queue).add(job, {"key": key, "value": str(i)}).id for i in range(n)]
    run_burst(queue)
    return ids


def failed(n: int, key: str = "failures") -> list[str]:
    """Add ``n`` notifications jobs that fail at once and run them; their ids."""
    queue = get_queue("notifications")
    ids = [queue.add(jobs.fail_with, {"key": key, "error": "unrecoverable"}).id for _ in range(n)]
    run_burst("notifications")
    return ids


def pause_between() -> float:
    """Sleep a little on each side of the moment returned: jobs handled before it are older than jobs after it,
    and ``clean(time.time() - moment)`` tells them apart however long the steps around it take."""
    time.sleep(0.05)
    moment = time.time()
    time.sleep(0.05)
    return moment


def events(client: redis.Redis, queue: str, name: str) -> list[dict]:
    return [event for event in read(client, queue, count=10_000) if event["event"] == name]


@contextmanager
def running_slow_job(client: redis.Redis, seconds: float = 30) -> Iterator[str]:
    """A ``manage.py rqworker email`` process running a slow job; yields the job's id once it has started."""
    with worker_process("rqworker", "email") as proc:
        job_id = get_queue("email").add(jobs.slow, {"key": "slow", "seconds": seconds}).id
        wait_for(lambda: values(client, "slow") == ["started"], 30, "the slow job to start", proc)
        yield job_id


# --- counts -----------------------------------------------------------------------------------------------------


def test_get_job_counts__counts_every_state_including_paused_and_rate_limited(redis_client: redis.Redis) -> None:
    """Count waiting, prioritized, delayed, completed and failed jobs, and those a pause or rate limit holds."""
    finished("notifications", 2)
    failed(1)
    queue = get_queue("notifications")
    for i in range(3):
        queue.add(jobs.note, {"key": "k", "value": str(i)})
    queue.add(jobs.note, {"key": "k", "value": "p"}, priority=2)
    queue.add(jobs.note, {"key": "k", "value": "d"}, delay=3600)
    expected = {"waiting": 3, "prioritized": 1, "delayed": 1, "active": 0, "completed": 2, "failed": 1,
                "paused": 0, "rate_limited": 0}
    assert queue.get_job_counts() == expected
    queue.pause()
    assert queue.get_job_counts() == {**expected, "paused": 4}
    queue.resume()
    queue.rate_limit(60)
    assert queue.get_job_counts() == {**expected, "rate_limited": 4}


def test_get_job_counts__rate_limited_while_the_limiter_window_is_full(redis_client: redis.Redis) -> None:
    """Count the waiting jobs as rate_limited once the limiter's window is full, not before."""
    limited = copy.deepcopy(settings.QUEUES)
    limited["limited"]["limiter"] = {"max": 2, "duration": 600}
    with override_settings(QUEUES=limited):
        queue = get_queue("limited")
        for i in range(3):
            queue.add(jobs.limited_start, {"key": f"start-{i}"})
        assert queue.get_job_counts()["rate_limited"] == 0
        run_burst("limited")  # two start, the window is full for 600 s, the third waits
        counts = queue.get_job_counts()
    assert (counts["completed"], counts["waiting"], counts["rate_limited"]) == (2, 1, 1)


def test_get_job_counts__sees_an_active_job(redis_client: redis.Redis) -> None:
    """Count a job a worker is running as active."""
    with running_slow_job(redis_client):
        assert get_queue("email").get_job_counts()["active"] == 1


# --- listing ----------------------------------------------------------------------------------------------------


def test_get_jobs__lists_each_state_in_bullmq_order(redis_client: redis.Redis) -> None:
    """List waiting and prioritized jobs in the order they run, delayed by due time, completed newest first."""
    done = finished("notifications", 3)
    queue = get_queue("notifications")
    waiting = [queue.add(jobs.note, {"key": "k", "value": str(i)}).id for i in range(3)]
    low = queue.add(jobs.note, {"key": "k", "value": "low"}, priority=9).id
    high = queue.add(jobs.note, {"key": "k", "value": "high"}, priority=1).id
    later = queue.add(jobs.note, {"key": "k", "value": "later"}, delay=600).id
    sooner = queue.add(jobs.note, {"key": "k", "value": "sooner"}, delay=60).id
    assert [job.id for job in queue.get_jobs("waiting")] == waiting
    assert [job.id for job in queue.get_jobs("waiting", 1, 1)] == waiting[1:2]
    assert [job.id for job in queue.get_jobs("prioritized")] == [high, low]
    assert [job.id for job in queue.get_jobs("delayed")] == [sooner, later]
    assert [job.id for job in queue.get_jobs("completed")] == done[::-1]
    assert [job.id for job in queue.get_jobs("completed", 0, 0)] == [done[-1]]
    assert queue.get_jobs("active") == []
    assert queue.get_jobs("waiting")[0].data == {"key": "k", "value": "0"}


def test_get_failed__newest_first_with_the_error(redis_client: redis.Redis) -> None:
    """Return the failed jobs newest first, each with the traceback of its failure."""
    ids = failed(3)
    listed = get_queue("notifications").get_failed()
    assert [job.id for job in listed] == ids[::-1]
    assert "UnrecoverableError" in listed[0].latest_result().exc_string
    assert [job.id for job in get_queue("notifications").get_failed(1, 2)] == ids[1::-1]


def test_get_jobs__lists_the_running_job_as_active(redis_client: redis.Redis) -> None:
    """List the job a worker is running under active."""
    with running_slow_job(redis_client) as job_id:
        assert [job.id for job in get_queue("email").get_jobs("active")] == [job_id]


def test_get_jobs__unknown_state_is_refused_naming_the_states(redis_client: redis.Redis) -> None:
    """Refuse a state that does not exist, naming those that do."""
    with pytest.raises(InvalidJobOptions, match="use one of waiting, prioritized, delayed, active, completed"):
        get_queue("email").get_jobs("finished")


# --- retry ------------------------------------------------------------------------------------------------------


def test_job_retry__failed_job_runs_again_with_its_attempts_reset_and_completes(redis_client: redis.Redis) -> None:
    """Retry a job that used up its two attempts: a real worker runs it again from attempt 1, and it completes."""
    queue = get_queue("notifications")
    handle = queue.add(jobs.fail_first_runs, {"key": "runs", "failures": 2})
    with worker_process("rqworker", "notifications") as proc:
        wait_for(lambda: handle.get_state() == "failed", 30, "both attempts to fail", proc)
        assert values(redis_client, "runs") == ["0", "1"]
        assert handle.retry() is True
        assert handle.get_state() in ("waiting", "active", "completed")
        wait_for(lambda: handle.get_state() == "completed", 30, "the retried job to complete", proc)
    assert values(redis_client, "runs") == ["0", "1", "0"]  # the third run is attempt 1 again
    assert queue.get_job(handle.id).return_value() == 0
    retried = [e for e in events(redis_client, "notifications", "waiting") if e.get("prev") == "failed"]
    assert [e["job_id"] for e in retried] == [handle.id]


def test_job_retry__completed_job_runs_again_but_a_waiting_one_is_left_alone(redis_client: redis.Redis) -> None:
    """Retry a completed job (it runs again); refuse with False a job that is waiting, or gone."""
    [done] = finished("email", 1, key="ran")
    queue = get_queue("email")
    assert queue.get_job(done).retry() is True
    assert [job.id for job in queue.get_jobs("waiting")] == [done]
    assert queue.get_job(done).retry() is False
    run_burst("email")
    assert values(redis_client, "ran") == ["0", "0"]
    assert queue.get_job_counts()["completed"] == 1
    queue.remove_job(done)
    handle = queue.add(jobs.record, {"key": "k", "value": "v"})
    handle.remove()
    assert handle.retry() is False


def test_job_retry__prioritized_job_goes_back_to_its_priority(redis_client: redis.Redis) -> None:
    """Put a retried job that has a priority back among the prioritized jobs, not the waiting ones."""
    queue = get_queue("notifications")
    handle = queue.add(jobs.fail_with, {"key": "k", "error": "unrecoverable"}, priority=3)
    run_burst("notifications")
    assert handle.retry() is True
    assert handle.get_state() == "prioritized"
    assert [job.id for job in queue.get_jobs("prioritized")] == [handle.id]


def test_retry_jobs__retries_all_failed_oldest_first_or_count_of_them(redis_client: redis.Redis) -> None:
    """Move every failed job back to waiting, oldest first (or only ``count`` of them), publishing ``waiting``."""
    ids = failed(5)
    queue = get_queue("notifications")
    assert queue.retry_jobs(count=2) == 2
    assert [job.id for job in queue.get_jobs("waiting")] == ids[:2]
    assert queue.retry_jobs() == 3
    assert [job.id for job in queue.get_jobs("waiting")] == ids
    assert queue.get_job_counts()["failed"] == 0
    retried = [e for e in events(redis_client, "notifications", "waiting") if e.get("prev")]
    assert [(e["job_id"], e["prev"]) for e in retried] == [(job_id, "failed") for job_id in ids]
    assert queue.retry_jobs() == 0


def test_retry_jobs__completed_state_and_bad_arguments(redis_client: redis.Redis) -> None:
    """Retry completed jobs when asked; refuse any other state or a negative count."""
    ids = finished("notifications", 2)
    queue = get_queue("notifications")
    assert queue.retry_jobs(state="completed") == 2
    assert [job.id for job in queue.get_jobs("waiting")] == ids
    with pytest.raises(InvalidJobOptions, match="'failed' or 'completed'"):
        queue.retry_jobs(state="delayed")
    with pytest.raises(InvalidJobOptions, match="count"):
        queue.retry_jobs(count=-1)


# --- remove -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["waiting", "prioritized", "delayed", "completed", "failed"])
def test_remove_job__leaves_nothing_of_the_job_in_redis(redis_client: redis.Redis, state: str) -> None:
    """Remove a job in each state with its hash, results and registry entry; publish ``removed``."""
    queue = get_queue("notifications")
    if state == "completed":
        [job_id] = finished("notifications", 1)
    elif state == "failed":
        [job_id] = failed(1)
    else:
        options = {"prioritized": {"priority": 4}, "delayed": {"delay": 600}}.get(state, {})
        job_id = queue.add(jobs.note, {"key": "k", "value": "v"}, **options).id
    other = queue.add(jobs.note, {"key": "k", "value": "other"}).id
    assert queue.get_job(job_id).get_state() == state
    assert queue.remove_job(job_id) is True
    assert mentions(redis_client, [job_id]) == []
    assert queue.get_job(job_id) is None
    assert queue.get_job(other) is not None
    assert events(redis_client, "notifications", "removed")[-1] | {"id": ""} == {
        "id": "", "event": "removed", "job_id": job_id, "prev": state}
    assert queue.remove_job(job_id) is False


def test_remove_job__unknown_or_other_queues_job_is_not_removed(redis_client: redis.Redis) -> None:
    """Return False for an id the queue does not have, including another queue's job (which stays)."""
    email_job = get_queue("email").add(jobs.record, {"key": "k", "value": "v"})
    assert get_queue("notifications").remove_job(email_job.id) is False
    assert get_queue("notifications").remove_job("no-such-job") is False
    assert email_job.get_state() == "waiting"
    assert email_job.remove() is True
    assert mentions(redis_client, [email_job.id]) == []


def test_remove_job__refuses_a_running_job(redis_client: redis.Redis) -> None:
    """Refuse to remove a job a worker is running (QueueBusy), leaving it to finish."""
    with running_slow_job(redis_client, seconds=1) as job_id:
        with pytest.raises(QueueBusy, match="is running: it can be removed once it has ended"):
            get_queue("email").remove_job(job_id)
        handle = get_queue("email").get_job(job_id)
        wait_for(lambda: handle.get_state() == "completed", 30, "the job to finish")
    assert handle.remove() is True
    assert mentions(redis_client, [job_id]) == []


# --- clean ------------------------------------------------------------------------------------------------------


def test_clean__removes_only_jobs_older_than_grace_up_to_limit(redis_client: redis.Redis) -> None:
    """Remove completed jobs that ended more than ``grace`` ago, at most ``limit``, oldest first; return their ids."""
    old = finished("notifications", 3)
    between = pause_between()
    new = finished("notifications", 2)
    queue = get_queue("notifications")
    assert queue.clean(timedelta(seconds=time.time() - between), limit=2) == old[:2]
    assert queue.clean(time.time() - between) == old[2:]
    assert sorted(job.id for job in queue.get_jobs("completed")) == sorted(new)
    assert mentions(redis_client, old) == []
    assert queue.clean(3600) == []
    cleaned = events(redis_client, "notifications", "cleaned")
    assert [(e["count"], e["state"]) for e in cleaned] == [(2, "completed"), (1, "completed"), (0, "completed")]


@pytest.mark.parametrize("state", ["waiting", "prioritized", "delayed", "failed"])
def test_clean__each_state_by_age(redis_client: redis.Redis, state: str) -> None:
    """Clean old waiting, prioritized, delayed and failed jobs, keeping the ones younger than grace."""
    queue = get_queue("notifications")

    def add(n: int) -> list[str]:
        if state == "failed":
            return failed(n)
        options = {"prioritized": {"priority": 2}, "delayed": {"delay": 600}}.get(state, {})
        return [queue.add(jobs.note, {"key": "k", "value": str(i)}, **options).id for i in range(n)]

    old = add(2)
    between = pause_between()
    new = add(2)
    assert sorted(queue.clean(time.time() - between, state=state)) == sorted(old)
    assert sorted(job.id for job in queue.get_jobs(state)) == sorted(new)
    assert mentions(redis_client, old) == []


def test_clean__keeps_young_jobs_ahead_of_old_ones(redis_client: redis.Redis) -> None:
    """Skip young jobs that come first (priority 1) and clean the old ones behind them (priority 5)."""
    queue = get_queue("notifications")
    old = [queue.add(jobs.note, {"key": "k", "value": "old"}, priority=5).id for _ in range(3)]
    between = pause_between()
    new = [queue.add(jobs.note, {"key": "k", "value": "new"}, priority=1).id for _ in range(3)]
    assert queue.clean(time.time() - between, state="prioritized") == old
    assert [job.id for job in queue.get_jobs("prioritized")] == new


def test_clean__thousands_of_waiting_jobs_in_batches(redis_client: redis.Redis) -> None:
    """Clean 2,500 waiting jobs (script calls of 500) with a limit, then with none: the oldest go first."""
    queue = get_queue("notifications")
    ids = [job.id for job in queue.add_bulk([{"job": jobs.note, "data": {"key": "k", "value": str(i)}}
                                              for i in range(2500)])]
    assert queue.clean(0, limit=1500, state="waiting") == ids[:1500]
    assert [job.id for job in queue.get_jobs("waiting", 0, 1)] == ids[1500:1502]
    assert queue.clean(0, limit=None, state="waiting") == ids[1500:]
    assert queue.get_job_counts()["waiting"] == 0
    assert mentions(redis_client, ids) == []


def test_clean__bad_arguments_are_refused(redis_client: redis.Redis) -> None:
    """Refuse an unknown state, a negative grace and a negative limit, saying what is accepted."""
    queue = get_queue("notifications")
    with pytest.raises(InvalidJobOptions, match="completed, failed, delayed, waiting, prioritized"):
        queue.clean(0, state="active")
    with pytest.raises(InvalidJobOptions, match="grace must be seconds"):
        queue.clean(-1)
    with pytest.raises(InvalidJobOptions, match="limit must be"):
        queue.clean(0, limit=-5)


# --- drain ------------------------------------------------------------------------------------------------------


def test_drain__removes_waiting_and_prioritized_keeps_the_rest(redis_client: redis.Redis) -> None:
    """Remove waiting and prioritized jobs; leave delayed, completed and failed ones; publish ``drained``."""
    done = finished("notifications", 1)
    fails = failed(1)
    queue = get_queue("notifications")
    gone = [queue.add(jobs.note, {"key": "k", "value": "w"}).id, queue.add(jobs.note, {"key": "k"}, priority=3).id]
    delayed = queue.add(jobs.note, {"key": "k", "value": "d"}, delay=600).id
    assert queue.drain() == 2
    assert queue.get_job_counts() | {"paused": 0, "rate_limited": 0} == {
        "waiting": 0, "prioritized": 0, "delayed": 1, "active": 0, "completed": 1, "failed": 1, "paused": 0,
        "rate_limited": 0}
    assert mentions(redis_client, gone) == []
    assert queue.get_job(delayed) and queue.get_job(done[0]) and queue.get_job(fails[0])
    assert events(redis_client, "notifications", "drained")[-1]["count"] == 2
    assert queue.drain(include_delayed=True) == 1
    assert mentions(redis_client, [delayed]) == []


def test_drain__thousands_of_jobs_in_batches(redis_client: redis.Redis) -> None:
    """Drain 2,500 waiting, 1,200 prioritized and 1,100 delayed jobs leaving none of their keys."""
    queue = get_queue("notifications")
    specs = ([{"job": jobs.note, "data": {"key": "k"}}] * 2500
             + [{"job": jobs.note, "data": {"key": "k"}, "options": {"priority": 2}}] * 1200
             + [{"job": jobs.note, "data": {"key": "k"}, "options": {"delay": 600}}] * 1100)
    ids = [job.id for job in queue.add_bulk(specs)]
    assert queue.drain(include_delayed=True) == 4800
    assert mentions(redis_client, ids) == []
    assert not any(key.startswith(b"rq:job:") for key in redis_client.keys("*"))


# --- obliterate -------------------------------------------------------------------------------------------------


def test_obliterate__removes_every_key_of_the_queue_and_nothing_else(redis_client: redis.Redis) -> None:
    """Remove every job, registry, flag, limiter, event and metric of the queue; other queues keep theirs."""
    email_job = get_queue("email").add(jobs.record, {"key": "k", "value": "v"})
    ids = finished("notifications", 2) + failed(2)
    queue = get_queue("notifications")
    ids += [queue.add(jobs.note, {"key": "k"}).id, queue.add(jobs.note, {"key": "k"}, priority=1).id,
            queue.add(jobs.note, {"key": "k"}, delay=600).id]
    queue.pause()
    queue.rate_limit(60)
    redis_client.rpush("rq:dashboard:backlog:notifications", "0:0")  # the admin dashboard's samples
    before = {key.decode() for key in redis_client.keys("*")}
    assert "rq:events:notifications" in before
    assert queue.obliterate() == 7
    left = {key.decode() for key in redis_client.keys("*")}
    assert [key for key in left if "notifications" in key and not key.startswith("rq:worker")] == []
    assert mentions(redis_client, ids) == []
    assert b"rq:queue:notifications" not in redis_client.smembers("rq:queues")
    assert email_job.get_state() == "waiting"
    assert {key for key in before if "email" in key} <= left
    assert queue.get_job_counts() == dict.fromkeys(
        ("waiting", "prioritized", "delayed", "active", "completed", "failed", "paused", "rate_limited"), 0)
    queue.add(jobs.note, {"key": "again", "value": "1"})  # a new, empty queue: not paused, not limited
    run_burst("notifications")
    assert values(redis_client, "again") == ["1"]


def test_obliterate__thousands_of_jobs_in_batches(redis_client: redis.Redis) -> None:
    """Obliterate a queue of 3,000 waiting and 1,500 delayed jobs: not a job key is left."""
    queue = get_queue("notifications")
    queue.add_bulk([{"job": jobs.note, "data": {"key": "k"}}] * 3000
                   + [{"job": jobs.note, "data": {"key": "k"}, "options": {"delay": 600}}] * 1500)
    assert queue.obliterate() == 4500
    assert [key for key in redis_client.keys("*") if b"notifications" in key or key.startswith(b"rq:job:")] == []


def test_obliterate__refuses_while_a_job_is_active_unless_forced(redis_client: redis.Redis) -> None:
    """Refuse (QueueBusy, nothing changed, not even paused) while a worker runs a job; with force, remove it all."""
    queue = get_queue("email")
    with running_slow_job(redis_client, seconds=30) as job_id:
        waiting = queue.add(jobs.record, {"key": "k", "value": "v"}).id
        counts = queue.get_job_counts()
        with pytest.raises(QueueBusy, match="has 1 active job.*force=True"):
            queue.obliterate()
        assert queue.get_job_counts() == counts
        assert not queue.is_paused()
        assert queue.obliterate(force=True) == 2
        assert mentions(redis_client, [job_id, waiting]) == []
