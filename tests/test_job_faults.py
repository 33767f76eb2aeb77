"""Job faults (issue 13): garbage job hashes put straight into Redis, by a bug, an older version or anyone with
Redis access. Each must end failed with a clear reason (or be dropped), the worker must go on taking the next job,
and the admin pages (the dashboard, the queue page on every tab, the job's django-rq page) must still render.

Each case is written by hand the way ``queues/lua/add.lua`` writes a job (the hash, RPUSH onto the waiting list,
the marker that wakes a worker), minus the broken part.

Faults covered elsewhere, not repeated here:

- a job past its timeout: tests/test_job_options.py, ``test_timeout__per_job_and_queue_default_stop_a_long_run``;
- a job ending its own process (``os._exit``), in every mode: tests/test_modes.py,
  ``test_modes__a_job_ending_its_own_process_is_recovered_and_the_worker_goes_on``;
- a job past its memory limit (MemoryError), in every mode: below,
  ``test_job_faults__a_job_past_its_memory_limit_fails_with_the_reason_and_the_worker_goes_on``;
- a return value JSON cannot carry: tests/test_worker.py,
  ``test_worker__unserializable_return_value_is_stored_as_rq_marker_with_a_warning`` and
  ``test_worker__rqworker_completes_jobs_whose_return_value_json_cannot_carry``;
- RQ's own pickled jobs, unregistered functions and RQ callbacks: tests/test_worker.py,
  ``test_worker__pickled_job_found_in_redis_fails_without_running``, ``test_worker__unregistered_function_is_refused``
  and ``test_worker__job_carrying_an_rq_callback_is_refused_before_it_runs``.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client
from django.urls import reverse
from django_rq.settings import get_queues_map

from queues import get_queue
from queues.dashboard import JOB_STATES
from queues.events import read as read_events
from queues.job import rq_time
from queues.worker import SimpleWorker
from tests.conftest import manage_env
from tests.helpers import Workers, output, signals_restored, staff_client, values, wait_for
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "email"
DASHBOARD = "/admin/queues/queue/"
RAN = "garbage-ran"  # a garbage job that runs pushes its id here: only the one whose call is intact may


class Touch:
    """Unpickled, runs ``touch <path>``: the payload someone with Redis access would write for RQ's pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.path}",)


@dataclass
class Case:
    """A garbage job: ``change`` applied to the fields add.lua writes (None: drop the field), or no hash at all."""

    change: dict[str, Any] = field(default_factory=dict)
    reason: tuple[str, ...] = ()  # in the failed reason; empty: the job is dropped (or completes, see `completes`)
    no_hash: bool = False
    completes: bool = False
    rq_page: int = 200  # django-rq's job page: 404 ("Couldn't find job") for a hash without data, or no hash


def _pickled_rq_call(marker: Path) -> bytes:
    # What RQ's default serializer writes for `enqueue(os.system, "touch ...")`: compressed pickle.
    return zlib.compress(pickle.dumps(("posix.system", None, (f"touch {marker}",), {})))


def _pickle_running_on_load(marker: Path) -> bytes:
    return pickle.dumps((Touch(marker), None, (), {}))


def _json_call(path: str, *args: Any) -> str:
    return json.dumps([path, None, list(args), {}])


REFUSED = "JobRefused: Job "
UNREADABLE = "has fields this app cannot read"
NOT_JSON = "has data that is not a call written in JSON"
NOT_REGISTERED = "which is not a registered @job function: refused"
FAILING = _json_call("tests.testapp.jobs.fail_with", RAN, "x")  # raises: its retry reads intervals and backoff

CASES: dict[str, Any] = {
    # a) fields missing
    "no-data": lambda m: Case({"data": None}, (REFUSED, UNREADABLE, "no 'data'"), rq_page=404),
    "no-created-at-origin-description": lambda m: Case(
        {"created_at": None, "enqueued_at": None, "origin": None, "description": None}, completes=True),
    # Redis keeps no empty hash (HSET needs a field, and removing the last one removes the key): a hash left with
    # nothing but a status is the nearest thing.
    "status-only": lambda m: Case({name: None for name in (
        "created_at", "enqueued_at", "data", "description", "origin", "timeout", "result_ttl", "failure_ttl",
        "retries_left", "retry_intervals", "keep_completed", "keep_failed")}, (REFUSED, UNREADABLE, "no 'data'"),
        rq_page=404),
    "no-hash": lambda m: Case(no_hash=True, rq_page=404),
    # b) wrong types
    "timeout": lambda m: Case({"timeout": "abc"}, (REFUSED, UNREADABLE, "timeout='abc'")),
    "retries-left": lambda m: Case({"retries_left": "x"}, (REFUSED, UNREADABLE, "retries_left='x'")),
    "retry-intervals": lambda m: Case({"retry_intervals": "not json"}, (REFUSED, UNREADABLE, "retry_intervals=")),
    "retry-intervals-not-numbers": lambda m: Case({"retry_intervals": '"abc"', "data": FAILING},
                                                  (REFUSED, UNREADABLE, "retry_intervals='\"abc\"'")),
    "priority": lambda m: Case({"priority": "high"}, (REFUSED, UNREADABLE, "priority='high'")),
    "result-ttl": lambda m: Case({"result_ttl": "soon"}, (REFUSED, UNREADABLE, "result_ttl='soon'")),
    "status": lambda m: Case({"status": "bogus"}, (REFUSED, UNREADABLE, "status='bogus'")),
    "backoff": lambda m: Case({"backoff": "nonsense", "data": FAILING}, (REFUSED, UNREADABLE, "backoff='nonsense'")),
    "description-not-utf8": lambda m: Case({"description": b"\xff\xfe"}, (REFUSED, UNREADABLE, "description=")),
    "data-not-json": lambda m: Case({"data": b"{not json"}, (REFUSED, NOT_JSON, "JSONDecodeError")),
    "data-broken-zlib": lambda m: Case({"data": zlib.compress(_json_call("tests.testapp.jobs.record").encode())[:-6]},
                                       (REFUSED, NOT_JSON, "UnicodeDecodeError")),
    "data-wrong-shape": lambda m: Case({"data": '{"func": "tests.testapp.jobs.record"}'}, (REFUSED, NOT_JSON)),
    # c) pickle: never unpickled, so never run
    "pickle-as-rq-writes-it": lambda m: Case({"data": _pickled_rq_call(m)}, (REFUSED, NOT_JSON, "UnicodeDecodeError")),
    "pickle-running-when-loaded": lambda m: Case({"data": _pickle_running_on_load(m)},
                                                 (REFUSED, NOT_JSON, "UnicodeDecodeError")),
    # d) functions no @job registered
    "os-system": lambda m: Case({"data": _json_call("os.system", f"touch {m}")},
                                (REFUSED, f"names 'os.system', {NOT_REGISTERED}")),
    "no-such-func": lambda m: Case({"data": _json_call("no.such.func")},
                                   (REFUSED, f"names 'no.such.func', {NOT_REGISTERED}")),
}


def add_lua_fields(job_id: str) -> dict[str, Any]:
    """The fields add.lua writes for ``queue.add(jobs.record, {"key": RAN, "value": job_id})``."""
    now = rq_time(time.time())
    return {
        "created_at": now, "enqueued_at": now, "data": _json_call("tests.testapp.jobs.record", RAN, job_id),
        "description": "tests.record", "origin": QUEUE, "status": "queued", "timeout": "60", "result_ttl": "86400",
        "failure_ttl": "315360000", "retries_left": "2", "retry_intervals": "[1.0, 2.0]", "keep_completed": "100",
        "keep_failed": "500",
    }


def put(client: redis.Redis, case: Case) -> str:
    """Write the garbage job as add.lua would (hash, waiting list, marker); return its id."""
    job_id = str(uuid.uuid4())
    fields = add_lua_fields(job_id)
    for name, value in case.change.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    pipe = client.pipeline()
    pipe.sadd("rq:queues", f"rq:queue:{QUEUE}")
    if not case.no_hash:
        pipe.hset(f"rq:job:{job_id}", mapping=fields)
    pipe.rpush(f"rq:queue:{QUEUE}", job_id)
    pipe.zadd(f"rq:marker:{QUEUE}", {"0": 0})
    pipe.execute()
    return job_id


def viewer() -> Client:
    """A staff user with ``queues.view_queue``; a failing page answers 500 (into the assertion) instead of raising."""
    client = staff_client(f"viewer-{uuid.uuid4().hex[:8]}", "view_queue")
    client.raise_request_exception = False
    return client


def dashboard_pages(client: Client) -> dict[str, int]:
    """GET the dashboard, its stats and the queue page, opened as it opens and on every tab: url -> status."""
    queue_page = reverse("admin:queues_queue_queue", args=[QUEUE])
    urls = [DASHBOARD, DASHBOARD + "_stats/", queue_page, *(f"{queue_page}?state={state}" for state in JOB_STATES)]
    return {url: client.get(url).status_code for url in urls}


def assert_dashboard_renders(client: Client) -> None:
    statuses = dashboard_pages(client)
    assert statuses == dict.fromkeys(statuses, 200)


def rq_job_page(client: Client, job_id: str) -> int:
    """The status of django-rq's page of the job."""
    return client.get(reverse("django_rq:job_detail", args=[get_queues_map()[QUEUE], job_id])).status_code


def failed_reasons(client: redis.Redis) -> dict[str, str]:
    return {event["job_id"]: event["failed_reason"] for event in read_events(client, QUEUE, 1000)
            if event["event"] == "failed"}


def assert_ended(client: redis.Redis, job_id: str, case: Case) -> None:
    """The garbage job failed with its reason (the hash and the failed registry agree), completed, or is gone."""
    key = f"rq:job:{job_id}"
    assert client.lpos(f"rq:queue:{QUEUE}", job_id) is None, "still waiting"
    assert not [m for m in client.zrange(f"rq:wip:{QUEUE}", 0, -1) if m.decode().startswith(f"{job_id}:")], "active"
    if case.no_hash:
        assert not client.exists(key)
        assert client.zscore(f"rq:failed:{QUEUE}", job_id) is None
    elif case.completes:
        assert client.hget(key, "status") == b"finished"
        assert job_id in values(client, RAN)
    else:
        assert client.hget(key, "status") == b"failed"
        assert client.zscore(f"rq:failed:{QUEUE}", job_id) is not None
        reason = failed_reasons(client)[job_id]
        for part in case.reason:
            assert part in reason, reason
        assert client.hget(key, "exc_info"), "no traceback stored"
        ran = values(client, RAN)
        assert job_id not in ran and "ran" not in ran, "the garbage job ran"


@pytest.mark.parametrize("name", list(CASES))
def test_job_faults__garbage_job_ends_and_the_worker_goes_on(name: str, redis_client: redis.Redis,
                                                             tmp_path: Path) -> None:
    """End a garbage job failed with its reason, or dropped; run the next job; keep the dashboard rendering."""
    marker = tmp_path / "pwned"
    case = CASES[name](marker)
    client = viewer()
    job_id = put(redis_client, case)
    assert_dashboard_renders(client)  # the garbage job waiting
    after = get_queue(QUEUE).add(jobs.record, {"key": "after", "value": name})

    with signals_restored():
        SimpleWorker([QUEUE]).work(burst=True)

    assert after.get_state() == "completed"
    assert values(redis_client, "after") == [name]
    assert_ended(redis_client, job_id, case)
    handle = get_queue(QUEUE).get_job(job_id)  # the API reads it too (the dashboard's own path)
    assert (handle is None) == case.no_hash
    assert handle is None or handle.get_state() in ("failed", "completed")
    assert_dashboard_renders(client)  # ended
    assert rq_job_page(client, after.id) == 200
    assert not marker.exists(), "the payload ran"


@pytest.mark.parametrize("name", list(CASES))
def test_job_faults__django_rq_job_page_renders(name: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    """Render django-rq's page of a garbage job while it waits and once it ended (404 for one with no data)."""
    marker = tmp_path / "pwned"
    case = CASES[name](marker)
    client = viewer()
    job_id = put(redis_client, case)
    assert rq_job_page(client, job_id) == case.rq_page

    with signals_restored():
        SimpleWorker([QUEUE]).work(burst=True)

    assert rq_job_page(client, job_id) == case.rq_page
    assert not marker.exists(), "the payload ran"


def test_job_faults__rqworker_process_fails_every_garbage_job_and_keeps_running(
        redis_client: redis.Redis, mode: str, workers: Workers, tmp_path: Path) -> None:
    """Fail (or drop) every garbage job in one running `rqworker` process, in each mode, which never crashes or
    restarts, and runs the normal jobs after them."""
    marker = tmp_path / "pwned"
    cases = {name: make(marker) for name, make in CASES.items()}
    proc = workers.start("rqworker", QUEUE, env=manage_env(QUEUES_TEST_MODE=mode))
    ids = {}
    queue = get_queue(QUEUE)
    normal = []
    for name, case in cases.items():
        ids[name] = put(redis_client, case)
        normal.append(queue.add(jobs.record, {"key": "after", "value": name}))
    wait_for(lambda: all(job.get_state() == "completed" for job in normal), 30, "the normal jobs to complete", proc)

    assert values(redis_client, "after") == list(cases)  # in order: each one after its garbage job
    for name, case in cases.items():
        assert_ended(redis_client, ids[name], case)
    assert not marker.exists(), "the payload ran"
    assert proc.poll() is None
    log = output(proc)
    for sign in ("Traceback", "starting another", "crashed", "died", "recovering it as stalled", "back to waiting"):
        assert sign not in log, log
    client = viewer()
    assert_dashboard_renders(client)
    for name, job_id in ids.items():
        assert rq_job_page(client, job_id) == cases[name].rq_page, name


def test_job_faults__a_job_past_its_memory_limit_fails_with_the_reason_and_the_worker_goes_on(
        redis_client: redis.Redis, mode: str, workers: Workers) -> None:
    """A job that allocates past the memory it is allowed fails with ``MemoryError`` as its reason, in each mode;
    the worker process lives on, runs the next job, and the admin pages render."""
    proc = workers.start("rqworker", QUEUE, env=manage_env(QUEUES_TEST_MODE=mode))
    queue = get_queue(QUEUE)
    greedy = queue.add(jobs.exhaust_memory, {"room_mib": 64}, attempts=1)
    after = queue.add(jobs.record, {"key": "after", "value": "memory"})
    wait_for(lambda: after.get_state() == "completed", 60, "the job after it", proc)
    assert greedy.get_state() == "failed"
    assert failed_reasons(redis_client)[greedy.id].startswith("MemoryError")
    assert proc.poll() is None
    assert "starting another" not in output(proc)
    client = viewer()
    assert_dashboard_renders(client)
    assert rq_job_page(client, greedy.id) == 200

