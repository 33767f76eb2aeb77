"""Job schedulers (BullMQ's upsertJobScheduler): cron and interval runs, exactly once per tick, with real workers."""

from __future__ import annotations

import itertools
import json
import signal
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from django.core import checks
from django.test import override_settings

from queues import InvalidJobData, InvalidJobOptions, InvalidScheduler, UnknownJob, get_queue
from queues.schedulers import Rule, run_id
from tests.conftest import manage_env
from tests.helpers import output, wait_for

RUNS = "test:runs"
BERLIN = ZoneInfo("Europe/Berlin")


def runs(client: redis.Redis, key: str = RUNS) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def start_workers(workers, client: redis.Redis, count: int, queue: str = "email", env: dict | None = None) -> list:
    """``count`` ``rqworker`` commands, each up and idle (registered) before this returns."""
    before = client.scard("rq:workers")
    procs = [workers.start("rqworker", queue, env=env) for _ in range(count)]
    wait_for(lambda: client.scard("rq:workers") >= before + count, 30, f"{count} workers registered", procs)
    return procs


def stop(procs: list) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)
        assert proc.returncode == 0, output(proc)


# --- exactly once per tick, with real workers -------------------------------------------------------------------

def test_every_2s_with_three_workers__one_run_per_tick_never_early_and_a_restart_adds_none(workers, redis_client):
    procs = start_workers(workers, redis_client, 3)
    started = time.time()
    get_queue("email").upsert_job_scheduler("every-2", "tests.record_run", {"key": RUNS}, every=2)
    time.sleep(7 - (time.time() - started))
    in_seven = [run for run in runs(redis_client) if run["at"] <= started + 7]
    assert 3 <= len(in_seven) <= 4, in_seven

    stop(procs)  # restart every worker: the schedule goes on where it was, no run added twice
    start_workers(workers, redis_client, 3)
    time.sleep(4.5)
    seen = runs(redis_client)
    ids = [run["id"] for run in seen]
    assert len(ids) == len(set(ids)), f"a tick ran twice: {ids}"
    ticks = sorted(run["tick"] for run in seen)
    # the rhythm is kept (ticks on even seconds); a tick that fell in the restart's gap is simply not run
    assert all(round(b - a, 3) >= 2 and round(b - a, 3) % 2 == 0 for a, b in itertools.pairwise(ticks)), ticks
    for run in seen:
        assert run["id"] == run_id("every-2", run["tick"])
        assert run["at"] >= run["tick"], f"run {run['id']} started {run['tick'] - run['at']:.3f} s before its tick"
    assert len(seen) >= 5  # it kept running after the restart
    scheduler = get_queue("email").get_job_scheduler("every-2")
    assert scheduler["iteration_count"] >= len(seen)


def test_remove__no_run_after_the_call(workers, redis_client):
    start_workers(workers, redis_client, 1)
    queue = get_queue("email")
    queue.upsert_job_scheduler("every-1", "tests.record_run", {"key": RUNS}, every=1)
    wait_for(lambda: len(runs(redis_client)) >= 2, 10, "two runs")
    assert queue.remove_job_scheduler("every-1") is True
    removed_at = time.time()
    time.sleep(2.5)
    assert [run for run in runs(redis_client) if run["at"] > removed_at + 0.05] == []
    assert queue.get_job_scheduler("every-1") is None
    assert queue.get_job_counts()["delayed"] == 0  # its pending run went too
    assert queue.remove_job_scheduler("every-1") is False


def test_upsert_twice__one_scheduler_whose_next_run_follows_the_second(workers, redis_client):
    queue = get_queue("email")
    queue.upsert_job_scheduler("report", "tests.record_run", {"key": RUNS, "tag": "first"}, every=60)
    second = queue.upsert_job_scheduler("report", "tests.record_run", {"key": RUNS, "tag": "second"}, every=1)
    assert [item["id"] for item in queue.get_job_schedulers()] == ["report"]
    assert second["every"] == 1 and second["data"]["tag"] == "second"
    assert second["next"] - datetime.now(UTC) < timedelta(seconds=1.1)
    assert queue.get_job_counts()["delayed"] == 1  # the first definition's run is gone

    start_workers(workers, redis_client, 1)
    wait_for(lambda: len(runs(redis_client)) >= 2, 10, "two runs")
    assert {run["tag"] for run in runs(redis_client)} == {"second"}


def test_upserting_the_same_definition_again_changes_nothing(redis_client):
    queue = get_queue("email")
    first = queue.upsert_job_scheduler("same", "tests.record_run", {"key": RUNS}, every=5)
    time.sleep(0.05)
    again = queue.upsert_job_scheduler("same", "tests.record_run", {"key": RUNS}, every=5)
    assert again["next"] == first["next"]
    assert queue.get_job_counts()["delayed"] == 1


def test_no_worker_for_10s__runs_once_on_the_workers_return_then_once_a_second(workers, redis_client):
    queue = get_queue("email")
    queue.upsert_job_scheduler("catch-up", "tests.record_run", {"key": RUNS}, every=1)
    time.sleep(10)
    back = time.time()
    start_workers(workers, redis_client, 1)
    wait_for(lambda: len(runs(redis_client)) >= 4, 10, "four runs")
    seen = runs(redis_client)
    missed = [run for run in seen if run["tick"] < back]
    assert len(missed) == 1, seen  # ten ticks were missed: one run for all of them
    later = [run["tick"] for run in seen if run["tick"] >= back]
    assert all(b - a == pytest.approx(1, abs=0.01) for a, b in itertools.pairwise(later)), later


def test_limit_and_end_date_end_the_scheduler_and_it_stays_listed(workers, redis_client):
    queue = get_queue("email")
    queue.upsert_job_scheduler("three", "tests.record_run", {"key": RUNS}, every=0.5, limit=3, immediately=True)
    start_workers(workers, redis_client, 1)
    wait_for(lambda: len(runs(redis_client)) >= 3, 10, "three runs")
    time.sleep(1.2)
    assert len(runs(redis_client)) == 3
    ended = queue.get_job_scheduler("three")
    assert ended["ended"] is True and ended["next"] is None and ended["iteration_count"] == 3


def test_a_removed_pending_run_is_repaired_by_the_keeper(workers, redis_client):
    """An operator removes the pending run (or it failed on stalls before the next one was added): within a
    stall check a worker adds the next run from now."""
    queue = get_queue("stalls")  # stalled_interval 3: the keeper looks every second
    queue.upsert_job_scheduler("repaired", "tests.record_run_stalls", {"key": RUNS}, every=2)
    pending = queue.get_job_scheduler("repaired")
    assert queue.remove_job(run_id("repaired", pending["next"].timestamp())) is True
    start_workers(workers, redis_client, 1, queue="stalls")
    wait_for(lambda: redis_client.llen(RUNS) >= 1, 10, "a run after the repair")
    assert queue.get_job_scheduler("repaired")["iteration_count"] >= 1


def test_worker_killed_between_take_and_run__the_next_run_is_still_added_once(workers, redis_client):
    queue = get_queue("stalls")
    queue.upsert_job_scheduler("killed", "tests.record_run_stalls", {"key": RUNS}, every=1)
    first = workers.start("rqworker", "stalls", env=manage_env(QUEUES_TEST_PAUSE_AFTER_TAKE="30"))
    wait_for(lambda: redis_client.llen("queues:test:taken") >= 1, 15, "the run taken", first)
    from tests.helpers import kill_tree

    kill_tree(first)  # killed after the take, before the next run was added
    start_workers(workers, redis_client, 1, queue="stalls")
    wait_for(lambda: redis_client.llen(RUNS) >= 3, 20, "three runs after the kill")
    ids = redis_client.lrange("queues:test:taken", 0, -1)
    assert len(ids) == 1
    scheduler = queue.get_job_scheduler("killed")
    assert queue.get_job_counts()["delayed"] + queue.get_job_counts()["waiting"] <= 1, "two next runs"
    assert scheduler["next"] is not None


# --- the API's checks ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "says"), [
    ({}, InvalidScheduler, "exactly one of every= (seconds) or pattern="),
    ({"every": 1, "pattern": "* * * * *"}, InvalidScheduler, "not both"),
    ({"pattern": "61 * * * *"}, InvalidScheduler, "not a valid cron expression"),
    ({"pattern": "0 9 * *"}, InvalidScheduler, "5 fields"),
    ({"every": 0}, InvalidScheduler, "seconds > 0"),
    ({"every": 1, "tz": "Mars/Olympus"}, InvalidScheduler, "not a time zone name"),
    ({"every": 1, "start_date": datetime(2030, 1, 1)}, InvalidScheduler, "aware datetime"),  # noqa: DTZ001
    ({"every": 1, "limit": 0}, InvalidScheduler, "limit"),
    ({"every": 1, "job_id": "x"}, InvalidJobOptions, "from the scheduler"),
    ({"every": 1, "attempts": 0}, InvalidJobOptions, "attempts"),
])
def test_upsert__bad_input_is_refused_with_the_fix_and_writes_nothing(redis_client, kwargs, error, says):
    with pytest.raises(error, match=says.replace("(", r"\(").replace(")", r"\)")):
        get_queue("email").upsert_job_scheduler("bad", "tests.record_run", {"key": RUNS}, **kwargs)
    assert get_queue("email").get_job_schedulers() == []


def test_upsert__bad_id_job_or_data_is_refused(redis_client):
    queue = get_queue("email")
    with pytest.raises(InvalidScheduler, match="letters, digits"):
        queue.upsert_job_scheduler("has space", "tests.record_run", every=1)
    with pytest.raises(UnknownJob):
        queue.upsert_job_scheduler("x", "no.such.job", every=1)
    with pytest.raises(InvalidJobOptions, match="belongs to queue 'notifications'"):
        queue.upsert_job_scheduler("x", "tests.testapp.jobs.note", every=1)
    with pytest.raises(InvalidJobData):
        queue.upsert_job_scheduler("x", "tests.record_run", {"key": object()}, every=1)
    assert queue.get_job_schedulers() == []


def test_get_job_schedulers__describes_each(redis_client):
    queue = get_queue("email")
    queue.upsert_job_scheduler("daily", "tests.record_run", {"key": RUNS}, pattern="0 9 * * *", tz="Europe/Berlin",
                               attempts=3, priority=5)
    [item] = queue.get_job_schedulers()
    assert item["id"] == "daily" and item["job"] == "tests.record_run" and item["pattern"] == "0 9 * * *"
    assert item["every"] is None and item["tz"] == "Europe/Berlin" and item["iteration_count"] == 0
    assert item["data"] == {"key": RUNS} and item["options"] == {"attempts": 3, "priority": 5}
    assert item["origin"] == "api" and item["next"].astimezone(BERLIN).hour == 9
    assert item["next"].tzinfo is not None
    job = queue.get_job(run_id("daily", item["next"].timestamp()))
    assert job is not None and job.get_state() == "delayed" and job.rq_job.retries_left == 2


# --- the rule: cron across DST, every ------------------------------------------------------------------------

def local(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)


@pytest.mark.parametrize(("after", "expected"), [
    # spring forward (29 March 2026, 02:00 -> 03:00): 02:30 does not exist, it runs once at 03:00
    (local(2026, 3, 28, 12), local(2026, 3, 29, 3, 0)),
    (local(2026, 3, 27, 12), local(2026, 3, 28, 2, 30)),
    (local(2026, 3, 29, 3, 0), local(2026, 3, 30, 2, 30)),
    # fall back (25 October 2026, 03:00 -> 02:00): 02:30 happens twice, it runs once (the first)
    (local(2026, 10, 24, 12), local(2026, 10, 25, 2, 30)),
    (local(2026, 10, 25, 2, 30), local(2026, 10, 26, 2, 30)),
    (local(2026, 10, 25, 2, 45, fold=1), local(2026, 10, 26, 2, 30)),
    # 2027 too
    (local(2027, 3, 27, 12), local(2027, 3, 28, 3, 0)),
    (local(2027, 10, 30, 12), local(2027, 10, 31, 2, 30)),
])
def test_cron_across_dst__cron_correct_local_times(after, expected):
    rule = Rule(pattern="30 2 * * *", tz="Europe/Berlin")
    tick = rule.after(after.timestamp(), 0)
    assert tick == expected.timestamp(), datetime.fromtimestamp(tick, BERLIN)


def test_cron_six_fields__seconds_first():
    rule = Rule(pattern="*/15 * * * * *", tz="UTC")
    start = datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC).timestamp()
    assert rule.after(start, 0) == start + 8
    assert rule.after(start + 8, 0) == start + 23


def test_every__keeps_its_rhythm_and_end_date_ends_it():
    rule = Rule(every=10, end=1_000_100.0)
    assert rule.first(1_000_000.0, 1_000_000.0) == 1_000_010.0
    assert rule.after(1_000_037.5, 1_000_000.0) == 1_000_040.0  # next on the rhythm, not 10 s after now
    assert rule.after(1_000_095.0, 1_000_000.0) == 1_000_100.0
    assert rule.after(1_000_100.0, 1_000_000.0) is None
    assert Rule(every=2).first(1_000_001.3, 0.0) == 1_000_002.0  # BullMQ's rhythm: multiples of `every`
    immediate = Rule(every=10, immediately=True)
    assert immediate.first(1_000_000.0, 1_000_000.0) == 1_000_000.0


# --- settings ---------------------------------------------------------------------------------------------------

def test_settings_scheduler__starts_with_the_worker_and_goes_when_removed_from_settings(workers, redis_client):
    queue = get_queue("email")
    queue.upsert_job_scheduler("by-api", "tests.record_run", {"key": "test:api"}, every=3600)
    declared = {"from-settings": {"queue": "email", "job": "tests.record_run", "data": {"key": RUNS}, "every": 1}}
    env = manage_env(QUEUES_TEST_SCHEDULERS=json.dumps(declared))
    procs = start_workers(workers, redis_client, 1, env=env)
    wait_for(lambda: len(runs(redis_client)) >= 2, 10, "runs of the settings' scheduler", procs)
    assert queue.get_job_scheduler("from-settings")["origin"] == "settings"
    stop(procs)

    procs = start_workers(workers, redis_client, 1, env=manage_env(QUEUES_TEST_SCHEDULERS="{}"))
    assert queue.get_job_scheduler("from-settings") is None
    assert queue.get_job_scheduler("by-api") is not None  # one made through the API is left alone
    stop(procs)


@pytest.mark.parametrize(("spec", "says"), [
    ({"queue": "email", "job": "tests.record_run", "pattern": "0 25 * * *"}, "not a valid cron expression"),
    ({"queue": "email", "job": "no.such.job", "every": 5}, "No job named"),
    ({"queue": "nope", "job": "tests.record_run", "every": 5}, "not in QUEUES"),
    ({"queue": "email", "job": "tests.record_run", "every": 5, "pattern": "* * * * *"}, "not both"),
    ({"queue": "email", "job": "tests.record_run"}, "not neither"),
    ({"queue": "email", "job": "tests.record_run", "every": 5, "atempts": 3}, "unknown key"),
])
def test_check__a_bad_settings_scheduler_is_an_error_with_a_hint(spec, says):
    from queues.checks import check_schedulers

    with override_settings(QUEUES_JOB_SCHEDULERS={"broken": spec}):
        messages = check_schedulers()
    assert [m.id for m in messages] == ["queues.E014"]
    assert says in messages[0].msg and messages[0].hint
    assert messages[0].level == checks.ERROR


def test_check__the_projects_own_schedulers_are_valid():
    from config import settings as project
    from queues.checks import check_schedulers

    assert "cleanup" in project.QUEUES_JOB_SCHEDULERS
    with override_settings(QUEUES_JOB_SCHEDULERS=project.QUEUES_JOB_SCHEDULERS):
        assert check_schedulers() == []


# --- the project's daily cleanup ---------------------------------------------------------------------------------

def run_burst(*queues: str) -> None:
    from queues.worker import SimpleWorker
    from tests.helpers import signals_restored

    with signals_restored():
        SimpleWorker(list(queues)).work(burst=True)


@pytest.mark.django_db(transaction=True)
def test_cleanup__applies_each_queues_retention_to_old_jobs(redis_client, settings):
    """An operator tightened the email queue's retention to 5 completed jobs: the daily cleanup applies it to the
    30 kept before, and drops the entries of jobs whose age limit expired their hash."""
    email = get_queue("email")
    for n in range(30):
        email.add("tests.record", {"key": "test:kept", "value": str(n)})  # kept 100 for a day
    email.add("tests.record", {"key": "test:aged", "value": "x"}, remove_on_complete={"age": 1})
    run_burst("email")
    assert email.get_job_counts()["completed"] == 31
    time.sleep(1.1)  # the aged job's hash expires; its registry entry stays until trimmed

    settings.QUEUES = {**settings.QUEUES, "email": {**settings.QUEUES["email"], "default_job_options": {
        **settings.QUEUES["email"]["default_job_options"], "remove_on_complete": {"count": 5}}}}
    get_queue("cleanup").add("notifications.cleanup")
    run_burst("cleanup")
    assert get_queue("email").get_job_counts()["completed"] == 5
    newest = [job.data["value"] for job in get_queue("email").get_jobs("completed")]
    assert newest == ["29", "28", "27", "26", "25"]
    [done] = get_queue("cleanup").get_jobs("completed")
    assert done.rq_job.return_value()["jobs"]["email"] == {"completed": 26, "failed": 0}


@pytest.mark.django_db(transaction=True)
def test_cleanup__drops_notifications_that_ended_more_than_keep_days_ago(redis_client, settings, django_user_model):
    from django.utils import timezone

    from notifications.models import Notification, Status

    settings.NOTIFICATIONS_KEEP_DAYS = 30
    user = django_user_model.objects.create_user("reader", email="reader@example.com")
    old = timezone.now() - timedelta(days=31)
    rows = {status: Notification.objects.create(recipient=user, kind="reminder", status=status)
            for status in (Status.SENT, Status.FAILED, Status.CANCELED, Status.PENDING, Status.QUEUED)}
    Notification.objects.filter(pk__in=[row.pk for row in rows.values()]).update(updated_at=old)
    recent = Notification.objects.create(recipient=user, kind="reminder", status=Status.SENT)

    get_queue("cleanup").add("notifications.cleanup")
    run_burst("cleanup")
    left = set(Notification.objects.values_list("pk", flat=True))
    assert left == {rows[Status.PENDING].pk, rows[Status.QUEUED].pk, recent.pk}  # unfinished work is never dropped


def test_the_projects_cleanup_scheduler_runs_daily_on_the_cleanup_queue(redis_client):
    from config import settings as project
    from queues.schedulers import sync_settings

    with override_settings(QUEUES_JOB_SCHEDULERS=project.QUEUES_JOB_SCHEDULERS):
        sync_settings()
    scheduler = get_queue("cleanup").get_job_scheduler("cleanup")
    assert scheduler["job"] == "notifications.cleanup" and scheduler["origin"] == "settings"
    assert timedelta(0) < scheduler["next"] - datetime.now(UTC) <= timedelta(days=1)
    sweep = get_queue("cleanup").get_job_scheduler("notifications-sweep")
    assert sweep["job"] == "notifications.sweep" and sweep["every"] == 60
    exports = get_queue("cleanup").get_job_scheduler("exports-cleanup")
    assert exports["job"] == "exports.cleanup" and exports["pattern"] == "45 3 * * *"
    hooks = get_queue("cleanup").get_job_scheduler("webhooks-cleanup")
    assert hooks["job"] == "webhooks.cleanup" and hooks["pattern"] == "30 3 * * *"
    assert get_queue("cleanup").get_job_counts()["delayed"] == 4  # one pending run each


def test_a_scheduler_whose_job_is_gone_from_the_code_ends_with_an_error(redis_client, caplog):
    """A scheduler kept in Redis outlives a deploy that removed its job: the run taken still runs, the scheduler
    ends, and the log says what to do (the worker goes on)."""
    queue = get_queue("email")
    queue.upsert_job_scheduler("orphan", "tests.record_run", {"key": RUNS}, every=60, immediately=True)
    redis_client.hset("rq:scheduler:email:orphan", "job", "removed.in.this.deploy")
    run_burst("email")
    assert len(runs(redis_client)) == 1
    assert queue.get_job_scheduler("orphan")["ended"] is True
    assert "cannot add its next run, so it ends" in caplog.text and "removed.in.this.deploy" in caplog.text
