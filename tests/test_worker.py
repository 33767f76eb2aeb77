"""The worker, as deployed: django-rq's ``rqworker`` / ``rqworker-pool`` commands running this app's worker class.

Real processes against the session's own Redis (tests/conftest.py); no mocks. Jobs leave traces in Redis lists
(tests/testapp/jobs.py) that the tests read.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator

import psutil
import pytest
import redis
import rq
from rq.callbacks import Callback
from rq.job import Retry
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer, PickleSerializer

from queues import get_queue
from queues.events import read as read_events
from queues.worker import SimpleWorker, Worker
from tests.conftest import run_manage
from tests.helpers import last_failure, signals_restored, values, wait_for, worker_process
from tests.testapp import jobs


def stop(proc: subprocess.Popen, timeout: float = 15) -> tuple[int, str, float]:
    """SIGTERM the worker; its exit code, its output and how long it took to exit."""
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out, time.monotonic() - sent


@pytest.fixture
def restore_signal_handlers() -> Iterator[None]:
    """An in-process RQ worker installs SIGINT/SIGTERM handlers in the test process: put pytest's back."""
    with signals_restored():
        yield


def test_worker__rqworker_runs_this_apps_worker_and_json_on_both_queues(redis_client: redis.Redis) -> None:
    """Run jobs of two queues with `rqworker email notifications`, in this app's worker class, reading JSON."""
    email = get_queue("email").add("tests.record", {"key": "trace", "value": "email"})
    note = get_queue("notifications").add(jobs.note, {"key": "trace", "value": "notifications"})
    which = get_queue("email").add(jobs.worker_class, {"key": "worker-class"})
    # What is in Redis is JSON (a pickle-reading worker, django-rq's default, could not read it).
    raw = redis_client.hget(f"rq:job:{email.id}", "data")
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass
    assert json.loads(raw) == ["tests.testapp.jobs.record", None, [], {"key": "trace", "value": "email"}]

    result = run_manage("rqworker", "email", "notifications", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(values(redis_client, "trace")) == ["email", "notifications"]
    assert values(redis_client, "worker-class") == ["queues.worker.Worker"]
    assert [email.get_state(), note.get_state(), which.get_state()] == ["completed"] * 3


def test_worker__rqworker_with_scheduler_flag_runs_jobs(redis_client: redis.Redis) -> None:
    """Run a job with `rqworker email --with-scheduler --burst` (accepted; our worker promotes delayed jobs itself)."""
    handle = get_queue("email").add(jobs.record, {"key": "trace", "value": "ran"})

    result = run_manage("rqworker", "email", "--with-scheduler", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert values(redis_client, "trace") == ["ran"]
    assert handle.get_state() == "completed"


def test_worker__rqworker_pool_runs_each_job_exactly_once(redis_client: redis.Redis) -> None:
    """Run ten jobs with `rqworker-pool --num-workers 2`, each exactly once, in this app's worker class."""
    queue = get_queue("email")
    handles = [queue.add(jobs.record, {"key": "trace", "value": str(n)}) for n in range(10)]
    which = queue.add(jobs.worker_class, {"key": "worker-class"})

    result = run_manage("rqworker-pool", "email", "--num-workers", "2", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(values(redis_client, "trace"), key=int) == [str(n) for n in range(10)]
    assert values(redis_client, "worker-class") == ["queues.worker.Worker"]
    assert {h.get_state() for h in [*handles, which]} == {"completed"}


def test_worker__sigterm_lets_the_running_job_finish_then_exits_0(redis_client: redis.Redis) -> None:
    """Send SIGTERM to a busy `rqworker`: the job finishes, the worker exits 0 and leaves no process behind."""
    with worker_process("rqworker", "email") as proc:
        handle = get_queue("email").add(jobs.slow, {"key": "trace", "seconds": 2})
        wait_for(lambda: values(redis_client, "trace") == ["started"], 20, "the job to start", proc)
        children = psutil.Process(proc.pid).children(recursive=True)  # the work horse

        code, out, took = stop(proc)

    assert code == 0, out
    assert values(redis_client, "trace") == ["started", "finished"]
    assert handle.get_state() == "completed"
    assert "SIGTERM, stopping after the running job" in out
    print(f"exited {took:.2f} s after SIGTERM")
    assert took < 10, f"exited {took:.1f} s after SIGTERM"
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {alive}"


def test_worker__pickled_job_found_in_redis_fails_without_running(redis_client: redis.Redis) -> None:
    """Fail, without running, jobs that plain RQ wrote with pickle; keep working on the JSON job after them."""
    plain = rq.Queue("email", connection=redis_client, serializer=PickleSerializer)
    by_path = plain.enqueue("tests.testapp.jobs.record", "pickled-key", "ran")
    by_function = plain.enqueue(jobs.record, "pickled-key", "ran")
    after = get_queue("email").add(jobs.record, {"key": "after", "value": "ran"})

    result = run_manage("rqworker", "email", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert values(redis_client, "pickled-key") == []
    assert values(redis_client, "after") == ["ran"]
    failed = FailedJobRegistry("email", connection=redis_client).get_job_ids()
    assert sorted(failed) == sorted([by_path.id, by_function.id])
    for job in (by_path, by_function):
        assert get_queue("email").get_job(job.id).get_state() == "failed"
        assert "rq.exceptions.DeserializationError" in last_failure(job.id)
        assert "UnicodeDecodeError" in last_failure(job.id)  # the JSON serializer read the pickle bytes
    assert after.get_state() == "completed"


def test_worker__unregistered_function_is_refused(redis_client: redis.Redis) -> None:
    """Refuse JSON jobs that name a function no @job registered (one of the test app, and os.getcwd)."""
    plain = rq.Queue("email", connection=redis_client, serializer=JSONSerializer)
    undecorated = plain.enqueue("tests.testapp.jobs.not_a_job", "unregistered", retry=Retry(max=2))
    stdlib = plain.enqueue("os.getcwd")

    result = run_manage("rqworker", "email", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert values(redis_client, "unregistered") == []
    failed = FailedJobRegistry("email", connection=redis_client).get_job_ids()
    assert sorted(failed) == sorted([undecorated.id, stdlib.id])
    for job, path in ((undecorated, "tests.testapp.jobs.not_a_job"), (stdlib, "os.getcwd")):
        info = last_failure(job.id)
        assert "JobRefused" in info
        assert f"names {path!r}, which is not a registered @job function: refused" in info
        assert get_queue("email").get_job(job.id).get_state() == "failed"
    # A refused job fails at once: its retries are not spent running into the same refusal.
    assert get_queue("email").get_job(undecorated.id).rq_job.retries_left == 2


def test_worker__job_carrying_an_rq_callback_is_refused_before_it_runs(redis_client: redis.Redis) -> None:
    """Refuse, before its function runs and without importing the callback, a job that carries an RQ callback."""
    plain = rq.Queue("email", connection=redis_client, serializer=JSONSerializer)
    callback = Callback("tests.testapp.jobs.not_a_callback")
    carried = {
        # A retry must not make a refused job run either (it once ran once per attempt, then failed).
        "success": plain.enqueue("tests.testapp.jobs.record", "on-success", "ran", on_success=callback,
                                 retry=Retry(max=2)),
        "failure": plain.enqueue("tests.testapp.jobs.record", "on-failure", "ran", on_failure=callback),
        "stopped": plain.enqueue("tests.testapp.jobs.record", "on-stopped", "ran", on_stopped=callback),
    }

    result = run_manage("rqworker", "email", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert values(redis_client, "not-a-callback-called") == []
    failed = FailedJobRegistry("email", connection=redis_client).get_job_ids()
    assert sorted(failed) == sorted(job.id for job in carried.values())
    for kind, job in carried.items():
        assert values(redis_client, f"on-{kind}") == [], f"the job with a {kind} callback ran"
        assert f"carries an RQ {kind} callback 'tests.testapp.jobs.not_a_callback': refused" in last_failure(job.id)


def test_worker__retries_wait_out_exponential_backoff_then_complete(redis_client: redis.Redis) -> None:
    """Retry a failing job (attempts=3, exponential backoff 1 s) in a real worker: runs 1 s, then 2 s apart."""
    with worker_process("rqworker", "notifications") as proc:
        handle = get_queue("notifications").add(jobs.fail_then_record_times, {"key": "runs", "failures": 2},
                                                attempts=3, backoff={"type": "exponential", "delay": 1})
        wait_for(lambda: handle.get_state() == "completed", 20, "the job to complete", proc)
        code, out, _took = stop(proc)

    assert code == 0, out
    runs = [float(v) for v in values(redis_client, "runs")]
    assert len(runs) == 3, out  # failed twice, completed on the third run, and not run again
    assert get_queue("notifications").get_job(handle.id).rq_job.return_value() == 3  # attempts_made was 2
    # When each retry falls due (its `retrying` event), measured from the start of the run that failed.
    scheduled = [event["due"] for event in read_events(redis_client, "notifications", 1000)
                 if event["event"] == "retrying" and event["job_id"] == handle.id]
    assert len(scheduled) == 2, out
    delays = [scheduled[0] - runs[0], scheduled[1] - runs[1]]
    waits = [runs[1] - runs[0], runs[2] - runs[1]]
    print(f"retry scheduled after {delays[0]:.3f} s and {delays[1]:.3f} s; runs {waits[0]:.3f} s and "
          f"{waits[1]:.3f} s apart")
    assert 1.0 <= delays[0] < 1.5
    assert 2.0 <= delays[1] < 2.5
    # The worker promotes a retry when it falls due (to the millisecond), never before.
    assert 1.0 <= waits[0] < 1.5
    assert 2.0 <= waits[1] < 2.5
    for run, at in zip(runs[1:], scheduled, strict=True):
        assert at <= run <= at + 0.25


def test_worker__attempts_1_fails_after_a_single_run(redis_client: redis.Redis) -> None:
    """Fail a job added with attempts=1 after its first run, without a retry."""
    handle = get_queue("notifications").add(jobs.fail_then_record_times, {"key": "runs", "failures": 5},
                                            attempts=1)

    result = run_manage("rqworker", "notifications", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(values(redis_client, "runs")) == 1
    assert handle.get_state() == "failed"
    assert FailedJobRegistry("notifications", connection=redis_client).get_job_ids() == [handle.id]
    assert redis_client.zcard("rq:scheduled:notifications") == 0
    assert "failing on purpose, attempt 1" in last_failure(handle.id, "notifications")


@pytest.mark.usefixtures("restore_signal_handlers")
def test_worker__current_job_reads_its_id_name_data_and_attempts_in_a_forked_horse(redis_client: redis.Redis) -> None:
    """Read current_job()'s id, name, data and attempts_made inside a job run by the forking worker."""
    handle = get_queue("email").add(jobs.whoami, {"key": "whoami"})

    assert Worker(["email"]).work(burst=True) is True

    [recorded] = values(redis_client, "whoami")
    info = dict(ast.literal_eval(recorded))
    assert info["id"] == handle.id
    assert info["name"] == "tests.testapp.jobs.whoami"
    assert info["data"] == {"key": "whoami"}
    assert info["attempts_made"] == 0
    assert info["pid"] != os.getpid()  # a work horse forked for the job
    assert handle.get_state() == "completed"


def test_worker__unknown_queue_exits_non_zero_naming_it(redis_client: redis.Redis) -> None:
    """Exit non-zero, naming the queue, when `rqworker` is asked for a queue QUEUES does not define."""
    result = run_manage("rqworker", "nope", "--burst")

    assert result.returncode != 0
    # Today django-rq's command ends in a traceback whose last line is RQQueues' KeyError; the message names
    # the queue and the defined ones either way.
    assert re.search(r"[Qq]ueue 'nope' is not defined.*QUEUES.*\(defined: email, notifications, ", result.stderr)
    assert redis_client.keys("rq:worker*") == []


def test_worker__attempts_made_counts_every_run_once_the_job_has_ended() -> None:
    """Report BullMQ's attemptsMade on ended jobs: every run, the last included (2 and 2 here), and during a wait
    the runs that failed before (1)."""
    queue = get_queue("notifications")
    completes = queue.add(jobs.fail_then_record, {"key": "runs", "failures": 1}, attempts=3, backoff=0)
    fails = queue.add(jobs.fail_then_record, {"key": "runs", "failures": 5}, attempts=2, backoff=60)
    with signals_restored():
        SimpleWorker(["notifications"]).work(burst=True)
    waiting = queue.get_job(fails.id)
    assert (waiting.get_state(), waiting.attempts_made) == ("delayed", 1)  # its retry waits 60 s
    queue.connection.zadd("rq:scheduled:notifications", {fails.id: 0})  # due now
    with signals_restored():
        SimpleWorker(["notifications"]).work(burst=True)
    assert (queue.get_job(completes.id).get_state(), queue.get_job(completes.id).attempts_made) == ("completed", 2)
    assert (queue.get_job(fails.id).get_state(), queue.get_job(fails.id).attempts_made) == ("failed", 2)


def test_worker__unserializable_return_value_is_stored_as_rq_marker_with_a_warning(
        redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """Complete a job that returns a set, a datetime, an object or lists nested 10,000 deep; store RQ's
    "Unserializable return value" as its result and event, and log a WARNING naming the job and the value's type."""
    import logging

    from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD

    queue = get_queue("email")
    kinds = {"set": "set", "datetime": "datetime.datetime", "object": "object", "nested": "list"}
    handles = {kind: queue.add(jobs.returns_unserializable, {"kind": kind}) for kind in kinds}
    logger = logging.getLogger("queues.worker")  # the project's LOGGING stops propagation at "queues"
    caplog.set_level(logging.INFO, logger="queues.worker")
    added = not any(caplog.handler in lg.handlers for lg in (logger, logger.parent))  # pytest may attach it
    if added:
        logger.addHandler(caplog.handler)
    try:
        with signals_restored():
            SimpleWorker(["email"]).work(burst=True)
    finally:
        if added:
            logger.removeHandler(caplog.handler)

    warnings = [r.getMessage() for r in caplog.records if r.name == "queues.worker" and r.levelno == logging.WARNING]
    completed = {e["job_id"]: e.get("return_value") for e in read_events(redis_client, "email", 1000)
                 if e["event"] == "completed"}
    for kind, type_name in kinds.items():
        handle = handles[kind]
        assert handle.get_state() == "completed"
        assert handle.return_value() == UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
        assert completed[handle.id] == UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
        [warning] = [w for w in warnings if f"id={handle.id} " in w]
        assert (f"job id={handle.id} name=tests.testapp.jobs.returns_unserializable queue=email returned a value "
                f"of type {type_name}, which JSON cannot carry: stored 'Unserializable return value' as its result "
                "instead; return plain data (dicts, lists, str, numbers) or ids") in warning


def test_worker__rqworker_completes_jobs_whose_return_value_json_cannot_carry(redis_client: redis.Redis) -> None:
    """Complete, in `rqworker --burst`, jobs returning a set or lists nested 10,000 deep; warn for each and exit 0."""
    queue = get_queue("email")
    handles = [queue.add(jobs.returns_unserializable, {"kind": kind}) for kind in ("set", "nested")]

    result = run_manage("rqworker", "email", "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    for handle, type_name in zip(handles, ("set", "list"), strict=True):
        assert handle.get_state() == "completed"
        assert handle.return_value() == "Unserializable return value"
        assert (f"WARNING queues.worker job id={handle.id} name=tests.testapp.jobs.returns_unserializable queue=email "
                f"returned a value of type {type_name}, which JSON cannot carry") in output


def test_worker__a_listed_worker_keeps_the_callers_bounded_client(redis_client) -> None:
    """``Worker.all()`` (django-rq's metrics and stats, /queues/metrics) builds each worker as ``cls([], name)`` in a
    web process: that handle must use the caller's client (bounded by QUEUES_REDIS["TIMEOUT"]), never the worker's
    client that waits for Redis for ever, or a scrape hangs while Redis is away."""
    from queues.connection import WORKER, get_connection
    from queues.worker import Worker

    web = get_connection()
    handle = Worker([], "some-worker", connection=web)
    assert handle.connection is web
    assert Worker(["email"], connection=web).connection is get_connection(WORKER)
