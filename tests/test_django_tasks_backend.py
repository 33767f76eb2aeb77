"""Django's task API (``django.tasks``, backported by django-tasks) on these queues: ``queues.tasks.QueuesBackend``.

The tasks are those of ``tests.tasksapp``, an app written only against ``django_tasks``; they run on real
``manage.py rqworker`` processes, beside ``@job`` functions. Behaviours ported from django-tasks' own backend tests
(its database and RQ backends) are marked "(django-tasks)" in their docstrings.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.core import checks
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task_backends
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist, TaskResultMismatch
from django_tasks.signals import task_enqueued

from queues import InvalidJobData, get_queue
from queues.events import read
from queues.tasks import QueuesBackend, exception_path, run_task
from tests.helpers import kill_tree, run_async, wait_for
from tests.tasksapp import tasks
from tests.testapp.jobs import add as add_job

pytestmark = pytest.mark.django_db(transaction=True)


def finished(result, timeout: float = 30, procs=()) -> None:
    """Refresh ``result`` until its task has finished (succeeded, or failed for good)."""
    def done() -> bool:
        result.refresh()
        return result.is_finished
    wait_for(done, timeout, f"task {result.id} to finish", procs)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_tasks__results_come_back_from_a_real_worker(workers, tmp_path: Path) -> None:
    """A sync and an ``async def`` task run on ``rqworker``; their results, times and worker come back through
    ``get_result`` and ``refresh`` (django-tasks: enqueue, get_result, refresh, async task)."""
    added = tasks.add.enqueue(2, 3)
    awaited = tasks.async_add.enqueue(a=40, b=2)
    assert added.status == TaskResultStatus.READY and not added.is_finished
    assert added.args == [2, 3] and added.kwargs == {} and added.backend == "default"
    with pytest.raises(ValueError, match="not finished"):
        added.return_value  # noqa: B018
    worker = workers.start("rqworker", "default")
    finished(added, procs=worker)
    finished(awaited, procs=worker)
    assert (added.status, added.return_value, awaited.return_value) == (TaskResultStatus.SUCCESSFUL, 5, 42)
    assert added.enqueued_at <= added.started_at <= added.finished_at
    assert added.last_attempted_at == added.started_at
    assert added.attempts == 1 and len(added.worker_ids) == 1 and added.errors == []
    again = default_task_backend.get_result(added.id)
    assert (again.status, again.return_value, again.task.func) == (TaskResultStatus.SUCCESSFUL, 5, tasks.add.func)
    assert tasks.add.get_result(added.id).return_value == 5
    assert run_async(tasks.add.aget_result(added.id)).return_value == 5


def test_tasks__a_failing_task_is_retried_by_the_queue_options_and_reports_each_error(workers) -> None:
    """A task that raises is retried as its queue's ``attempts`` say (the ``default`` queue: 3, exponential
    backoff), then FAILED with one error per attempt: the exception's class path and traceback."""
    failing = tasks.fail.enqueue("it broke")
    worker = workers.start("rqworker", "default")
    finished(failing, timeout=60, procs=worker)
    assert failing.status == TaskResultStatus.FAILED
    assert failing.attempts == 3 and len(failing.errors) == 3
    assert {error.exception_class_path for error in failing.errors} == {"tests.tasksapp.tasks.TaskFailed"}
    assert failing.errors[0].exception_class is tasks.TaskFailed
    assert "TaskFailed: it broke" in failing.errors[-1].traceback
    with pytest.raises(ValueError, match="failed"):
        failing.return_value  # noqa: B018
    events = [event["event"] for event in read(get_queue("default").connection, "default")
              if event.get("job_id") == failing.id]
    assert events.count("retrying") == 2 and events[-1] == "failed", events


def test_tasks__takes_context_sees_its_result_and_attempt(workers, tmp_path: Path) -> None:
    """A ``takes_context`` task gets its own result (id, args, RUNNING) and the attempt number; its first attempt
    fails, the retry succeeds (django-tasks: context, attempts)."""
    trace = tmp_path / "context.txt"
    result = tasks.with_context.enqueue(str(trace))
    worker = workers.start("rqworker", "default")
    finished(result, procs=worker)
    assert lines(trace) == [f"{result.id} 1 RUNNING", f"{result.id} 2 RUNNING"]
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["id"] == result.id and result.return_value["attempt"] == 2
    assert result.return_value["args"] == [str(trace)]
    assert result.attempts == 2 and len(result.errors) == 1


def test_tasks__higher_priority_runs_first(workers, tmp_path: Path) -> None:
    """Django's priority (higher first) orders the tasks waiting on a queue (django-tasks: priority)."""
    trace = tmp_path / "order.txt"
    queue = get_queue("default")
    queue.pause()
    low = tasks.record.using(priority=-20).enqueue(str(trace), "low")
    normal = tasks.record.enqueue(str(trace), "normal")
    high = tasks.urgent.enqueue(str(trace), "high")  # @task(priority=50)
    top = tasks.record.using(priority=100).enqueue(str(trace), "top")
    assert default_task_backend.get_result(high.id).task.priority == 50
    worker = workers.start("rqworker", "default")
    queue.resume()
    for result in (low, normal, high, top):
        finished(result, procs=worker)
    assert lines(trace) == ["top", "high", "normal", "low"]


def test_tasks__run_after_is_never_early(workers, tmp_path: Path) -> None:
    """A task with ``run_after`` waits (READY, delayed) and never starts before it (django-tasks: defer)."""
    trace = tmp_path / "later.txt"
    at = timezone.now() + timedelta(seconds=5)
    later = tasks.record.using(run_after=at).enqueue(str(trace), "later")
    worker = workers.start("rqworker", "default")
    assert get_queue("default").get_job(later.id).get_state() == "delayed"
    assert default_task_backend.get_result(later.id).status == TaskResultStatus.READY
    assert default_task_backend.get_result(later.id).task.run_after == at
    finished(later, procs=worker)
    assert later.started_at >= at and lines(trace) == ["later"]


def test_tasks__run_beside_job_functions_on_one_worker(workers) -> None:
    """One ``rqworker`` runs a ``@task`` and a ``@job`` of the same queue."""
    doubled = tasks.on_email.enqueue(21)
    summed = get_queue("email").add(add_job, {"a": 1, "b": 2})
    worker = workers.start("rqworker", "email")
    finished(doubled, procs=worker)
    wait_for(lambda: summed.get_state() == "completed", 30, "the @job", worker)
    assert doubled.return_value == 42 and summed.rq_job.return_value(refresh=True) == 3


def test_tasks__only_tasks_of_installed_apps_run(workers, tmp_path: Path, redis_client: redis.Redis) -> None:
    """A task job naming a plain function, or anything outside the installed apps, is refused, not called."""
    trace = tmp_path / "ran.txt"
    queue = get_queue("default")
    refused = [queue.add_named(run_task, path, {"task": path, "args": [str(trace)], "kwargs": {}}, attempts=1)
               for path in ("tests.tasksapp.tasks.not_a_task", "os.system", "tests.tasksapp.tasks.missing")]
    worker = workers.start("rqworker", "default")
    for job in refused:
        wait_for(lambda job=job: job.get_state() == "failed", 30, f"{job.name} to be refused", worker)
        assert "JobRefused" in job.rq_job.latest_result().exc_string
    assert not trace.exists()


def test_tasks__the_dashboard_and_events_show_tasks(workers, admin_client) -> None:
    """A task's job is shown under the task's path on the queue page, and its events are published."""
    done = tasks.add.enqueue(1, 1)
    worker = workers.start("rqworker", "default")
    finished(done, procs=worker)
    html = admin_client.get("/admin/queues/queue/default/?state=completed").content.decode()
    assert "tests.tasksapp.tasks.add" in html and done.id in html
    events = [event for event in read(get_queue("default").connection, "default") if event.get("job_id") == done.id]
    assert [event["event"] for event in events] == ["added", "prioritized", "active", "completed"]
    assert events[0]["name"] == "tests.tasksapp.tasks.add"


def test_tasks__a_non_json_return_value_fails_at_once(workers) -> None:
    """A task that returns what JSON cannot carry fails without a retry (another attempt returns the same)."""
    result = tasks.not_json.enqueue()
    worker = workers.start("rqworker", "default")
    finished(result, procs=worker)
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert result.errors[0].exception_class_path == "queues.exceptions.UnrecoverableError"


def test_tasks__exit_in_a_task_fails_it_and_the_worker_goes_on(workers) -> None:
    """A task calling ``exit()`` fails at once (SystemExit in its traceback) and the worker runs the next task
    (django-tasks: test_system_exit_task, test_worker_doesnt_exit)."""
    exited = tasks.exits.enqueue()
    after = tasks.add.enqueue(1, 2)
    worker = workers.start("rqworker", "default")
    finished(exited, procs=worker)
    finished(after, procs=worker)
    assert exited.status == TaskResultStatus.FAILED and exited.attempts == 1
    assert "SystemExit" in exited.errors[0].traceback
    assert after.return_value == 3 and worker.poll() is None


def test_tasks__several_workers_never_run_a_task_twice(workers) -> None:
    """Tasks shared by three workers each run once (django-tasks-db: test_multiple_workers)."""
    results = [tasks.sleep_for.enqueue(0.05) for _ in range(30)]
    procs = [workers.start("rqworker", "default") for _ in range(3)]
    for result in results:
        finished(result, timeout=60, procs=procs)
    assert all(result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 1 for result in results)
    assert len({result.worker_ids[0] for result in results}) >= 2  # shared, not one worker's


def test_tasks__a_task_whose_worker_is_killed_runs_again(workers, tmp_path: Path) -> None:
    """A task whose worker is SIGKILLed mid-run is RUNNING until the stalled-job check puts it back; another
    worker then runs it to the end (django-tasks-db's test_kill leaves it RUNNING for ever)."""
    trace = tmp_path / "stalled.txt"
    result = tasks.slow_on_stalls.enqueue(str(trace), 2)
    first = workers.start("rqworker", "stalls")
    wait_for(lambda: lines(trace) == ["started"], 30, "the task to start", first)
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.RUNNING
    kill_tree(first)
    first.wait(timeout=10)
    second = workers.start("rqworker", "stalls")
    finished(result, timeout=60, procs=second)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2
    assert lines(trace) == ["started", "started"]


def test_tasks__signals_and_logs_of_a_run(redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """The worker sends ``task_started`` and ``task_finished`` (django-tasks logs them: RUNNING, then SUCCESSFUL or
    FAILED) for each attempt (django-tasks: test_started_finished_logs, test_failed_logs)."""
    from queues.worker import SimpleWorker
    from tests.helpers import signals_restored

    good = tasks.add.enqueue(1, 2)
    bad = tasks.fail.enqueue("logged")
    with caplog.at_level("DEBUG", logger="django_tasks"), signals_restored():
        SimpleWorker(["default"]).work(burst=True)
    logged = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "django_tasks"]
    assert ("INFO", f"Task id={good.id} path=tests.tasksapp.tasks.add state=RUNNING") in logged
    assert ("INFO", f"Task id={good.id} path=tests.tasksapp.tasks.add state=SUCCESSFUL") in logged
    assert ("ERROR", f"Task id={bad.id} path=tests.tasksapp.tasks.fail state=FAILED") in logged
    running = logged.index(("INFO", f"Task id={bad.id} path=tests.tasksapp.tasks.fail state=RUNNING"))
    assert running < logged.index(("ERROR", f"Task id={bad.id} path=tests.tasksapp.tasks.fail state=FAILED"))


# --- enqueue-time rules, without a worker -----------------------------------------------------------------------


def test_enqueue__arguments_must_be_json(redis_client: redis.Redis) -> None:
    """Arguments JSON cannot carry are refused at enqueue with the payload guard's error; nothing is added."""
    with pytest.raises(InvalidJobData, match="JSON"):
        tasks.add.enqueue({1, 2}, 3)
    with pytest.raises(InvalidJobData, match="NaN|nan"):
        tasks.add.enqueue(float("nan"), 3)
    assert get_queue("default").get_job_counts()["prioritized"] == 0
    tupled = tasks.add.enqueue((1, 2), b=[(3,)])  # tuples are lists in JSON (django-tasks: normalize_json)
    assert tupled.args == [[1, 2]] and tupled.kwargs == {"b": [[3]]}


def test_enqueue__queue_and_task_rules(redis_client: redis.Redis) -> None:
    """A queue the backend does not list, a task not at module level, or a naive run_after are Django's
    ``InvalidTaskError`` (django-tasks: validate_task)."""
    with pytest.raises(InvalidTaskError, match="Queue 'nope' is not valid"):
        tasks.add.using(queue_name="nope")
    with pytest.raises(InvalidTaskError, match="module level"):
        from django_tasks import task

        task()(lambda: None)
    with pytest.raises(InvalidTaskError, match="aware"):
        tasks.add.using(run_after=timezone.now().replace(tzinfo=None))
    with pytest.raises(InvalidTaskError, match="priority"):
        tasks.add.using(priority=101)


def test_enqueue__validates_again_with_the_settings_of_the_day(redis_client: redis.Redis) -> None:
    """A task made while its queue was allowed is refused at enqueue once it is not (django-tasks:
    test_validate_on_enqueue, test_validate_on_aenqueue)."""
    wider = {"default": {"BACKEND": "queues.tasks.QueuesBackend", "QUEUES": ["default", "other"]}}
    with override_settings(TASKS=wider):
        elsewhere = tasks.add.using(queue_name="other")
    with pytest.raises(InvalidTaskError, match="Queue 'other' is not valid for backend"):
        elsewhere.enqueue(1, 2)
    with pytest.raises(InvalidTaskError, match="Queue 'other' is not valid for backend"):
        run_async(elsewhere.aenqueue(1, 2))


def test_get_result__unknown_ids_and_other_tasks(redis_client: redis.Redis) -> None:
    """An id that is no task's result is ``TaskResultDoesNotExist`` (a @job's id too); a result asked of another
    task is ``TaskResultMismatch`` (django-tasks)."""
    for missing in ("nope", "", get_queue("email").add(add_job, {"a": 1, "b": 1}).id):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(missing)
    result = tasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        tasks.record.get_result(result.id)
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.READY


def test_get_result__equals_the_enqueued_result(redis_client: redis.Redis) -> None:
    """Right after enqueue, ``get_result`` returns an equal result, and ``refresh`` changes nothing, whatever the
    priority, queue or run_after (django-tasks: test_get_result, test_refresh_result)."""
    at = timezone.now() + timedelta(hours=1)
    for result in (tasks.add.enqueue(1, b=2), tasks.record.using(priority=-7, run_after=at).enqueue("x", "y"),
                   tasks.on_email.enqueue(3), run_async(tasks.async_add.aenqueue(1, 2))):
        assert default_task_backend.get_result(result.id) == result
        before = dataclasses.asdict(result)
        result.refresh()
        assert dataclasses.asdict(result) == before
        assert run_async(default_task_backend.aget_result(result.id)) == result
        run_async(result.arefresh())
        assert dataclasses.asdict(result) == before


def test_get_result__with_no_queues_listed_any_queue_goes(redis_client: redis.Redis) -> None:
    """``QUEUES: []`` means no queue check, as in Django: a task on any queue of ``QUEUES`` is enqueued, and its
    result found; garbage in Redis under an id is no result."""
    with override_settings(TASKS={"default": {"BACKEND": "queues.tasks.QueuesBackend", "QUEUES": []}}):
        result = tasks.add.using(queue_name="email").enqueue(1, 2)
        assert default_task_backend.get_result(result.id) == result
        redis_client.hset("rq:job:garbage", mapping={"data": b"\x80not json", "origin": "email"})
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result("garbage")


def test_get_result__of_a_job_that_names_no_task_is_suspicious(redis_client: redis.Redis) -> None:
    """A task job whose path is not a ``@task`` answers ``SuspiciousOperation`` (django-tasks:
    test_invalid_task_path)."""
    job = get_queue("default").add_named(run_task, "x", {"task": "subprocess.check_output", "args": [], "kwargs": {}})
    with pytest.raises(SuspiciousOperation, match="subprocess.check_output"):
        default_task_backend.get_result(job.id)


def test_enqueue__inside_a_transaction_waits_for_the_commit(redis_client: redis.Redis) -> None:
    """Inside ``atomic()`` the task reaches Redis at commit, and a rollback enqueues nothing."""
    with transaction.atomic():
        kept = tasks.add.enqueue(1, 2)
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(kept.id)
    assert default_task_backend.get_result(kept.id).status == TaskResultStatus.READY
    with pytest.raises(RuntimeError), transaction.atomic():
        dropped = tasks.add.enqueue(3, 4)
        raise RuntimeError("roll back")
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(dropped.id)


def test_enqueue__sends_task_enqueued(redis_client: redis.Redis) -> None:
    """Django's ``task_enqueued`` signal is sent with the result (django-tasks: signals)."""
    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append((sender, task_result.id))

    task_enqueued.connect(receiver)
    try:
        result = tasks.add.enqueue(1, 1)
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [(QueuesBackend, result.id)]


def test_backend__options_are_job_options_and_queues_are_checked(redis_client: redis.Redis) -> None:
    """``OPTIONS`` set job options of every task; ``QUEUES`` must name queues of ``QUEUES`` (queues.E015)."""
    bad = {"default": {"BACKEND": "queues.tasks.QueuesBackend", "QUEUES": ["default", "nope"],
                       "OPTIONS": {"atempts": 3}}}
    with override_settings(TASKS=bad):
        found = [error for error in checks.run_checks() if error.id == "queues.E015"]
        assert len(found) == 2
        assert "'nope', which is not a queue of QUEUES" in found[0].msg
        assert "'atempts'" in found[1].msg
    good = {"default": {"BACKEND": "queues.tasks.QueuesBackend", "QUEUES": ["default"],
                        "OPTIONS": {"attempts": 1, "remove_on_complete": {"count": 5}}}}
    with override_settings(TASKS=good):
        assert not [error for error in checks.run_checks() if error.id == "queues.E015"]
        result = tasks.add.enqueue(1, 1)
        job = get_queue("default").get_job(result.id)
        assert job.rq_job.retries_left is None and job.rq_job.keep_completed == "5"
    assert task_backends["default"].queues >= {"default", "email"}


FRAME = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'


@pytest.mark.parametrize(("text", "path"), [
    (FRAME + '    raise ValueError("a: b")\nValueError: a: b\n', "builtins.ValueError"),
    (FRAME + "    g()\n    ^^^\napp.tasks.Failed: two\nlines\n", "app.tasks.Failed"),
    (FRAME + "KeyError\n", "builtins.KeyError"),
])
def test_exception_path__read_from_the_traceback(text: str, path: str) -> None:
    """The error's class path is the line after the last frame, whatever the message holds."""
    assert exception_path(text) == path
