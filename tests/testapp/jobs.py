"""Job functions the tests add; each leaves a trace in Redis that the test can read."""

import json
import os
import sys
import time

from queues import current_job, job
from queues.connection import get_connection

from . import backoff  # noqa: F401 - registers its backoff strategy in every process


@job("email")
def add(a: int, b: int) -> int:
    return a + b


@job("email", name="tests.record")
def record(key: str, value: str) -> None:
    """Push ``value`` onto the Redis list ``key``, so a test can see the job ran."""
    get_connection().rpush(key, value)


@job("email")
def whoami(key: str) -> dict:
    running = current_job()
    assert running is not None
    info = {"id": running.id, "name": running.name, "data": running.data, "attempts_made": running.attempts_made,
            "pid": os.getpid(), "client_id": get_connection().client_id()}
    get_connection().rpush(key, repr(sorted(info.items())))
    return info


@job("email")
def slow(key: str, seconds: float) -> str:
    get_connection().rpush(key, "started")
    time.sleep(seconds)
    get_connection().rpush(key, "finished")
    return "done"


@job("notifications")
def fail_then_record(key: str, failures: int) -> int:
    """Fail the first ``failures`` runs, then record the attempt number."""
    running = current_job()
    assert running is not None
    if running.attempts_made < failures:
        raise RuntimeError(f"failing on purpose, attempt {running.attempts_made + 1}")
    get_connection().rpush(key, str(running.attempts_made + 1))
    return running.attempts_made + 1


@job("notifications")
def note(key: str, value: str) -> None:
    """Push ``value`` onto the Redis list ``key`` (a job of the "notifications" queue)."""
    get_connection().rpush(key, value)


@job("email")
def worker_class(key: str) -> str:
    """Record the dotted class name of the RQ worker that runs this job (found on the call stack)."""
    from rq.worker import BaseWorker

    frame = sys._getframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseWorker):
            name = f"{type(candidate).__module__}.{type(candidate).__qualname__}"
            get_connection().rpush(key, name)
            return name
        frame = frame.f_back
    get_connection().rpush(key, "no worker on the stack")
    return ""


@job("notifications")
def fail_then_record_times(key: str, failures: int) -> int:
    """Record ``time.time()`` at the start of every run; fail the first ``failures`` runs."""
    running = current_job()
    assert running is not None
    get_connection().rpush(key, repr(time.time()))
    if running.attempts_made < failures:
        raise RuntimeError(f"failing on purpose, attempt {running.attempts_made + 1}")
    return running.attempts_made + 1


def not_a_job(key: str) -> None:
    """Not decorated with @job: a worker must refuse a job that names it, however it got into Redis."""
    get_connection().rpush(key, "ran")


def not_a_callback(job, connection, *args) -> None:
    """An RQ callback that is no @job function: a worker must never import or call it."""
    get_connection().rpush("not-a-callback-called", job.id)


# Job options (tests/test_job_options.py).


class SomePermanentError(Exception):
    """An error a test lists in a queue's ``permanent_errors``: a job raising it fails at once."""


@job("notifications")
def fail_with(key: str, error: str) -> None:
    """Record the run, then raise: "unrecoverable", "permanent" (SomePermanentError) or else a RuntimeError."""
    from queues import UnrecoverableError

    get_connection().rpush(key, "ran")
    if error == "unrecoverable":
        raise UnrecoverableError("this job can never succeed")
    if error == "permanent":
        raise SomePermanentError("listed in the queue's permanent_errors")
    raise RuntimeError("this may succeed next time")


@job("email")
def take_turn(key: str, label: str, workers: int = 1, seconds: float = 0) -> None:
    """Record ``label|n|worker`` at the start of the run: ``n`` counts the starts of the jobs sharing ``key``,
    ``worker`` is the name of the RQ worker running it.

    The first run waits (up to 15 s) until ``workers`` workers serve the queue, so that they all take part.
    """
    connection = get_connection()
    deadline = time.monotonic() + 15
    while not connection.exists(f"{key}:go") and time.monotonic() < deadline:
        if connection.scard("rq:workers:email") >= workers:
            connection.set(f"{key}:go", 1)
        else:
            time.sleep(0.01)
    n = connection.incr(f"{key}:n")
    running = current_job()
    assert running is not None
    connection.rpush(key, f"{label}|{n}|{running.rq_job.worker_name}")
    time.sleep(seconds)


@job("email")
def record_time(key: str, label: str) -> None:
    """Push ``label|time.time()`` onto ``key`` at the start of the run."""
    get_connection().rpush(key, f"{label}|{time.time()!r}")


# Worker controls (tests/test_worker_controls.py).


def _run_record(key: str, **extra: object) -> dict:
    """Push a JSON record of this run (job id, worker, pid, attempts, time) onto ``key``; return it."""
    import json

    running = current_job()
    assert running is not None
    record = {"id": running.id, "worker": running.rq_job.worker_name, "pid": os.getpid(),
              "attempts_made": running.attempts_made, "retries_left": running.rq_job.retries_left,
              "at": time.time(), **extra}
    get_connection().rpush(key, json.dumps(record))
    return record


@job("limited")
def limited_start(key: str) -> None:
    """Record ``<job id>|<start time>|<worker>`` on ``key`` and ``<end time>`` on ``<key>:end`` (the rate-limited
    queue)."""
    connection = get_connection()
    running = current_job()
    assert running is not None
    connection.rpush(key, f"{running.id}|{time.time()!r}|{running.rq_job.worker_name}")
    connection.rpush(f"{key}:end", repr(time.time()))


@job("stalls")
def stall_run(key: str, seconds: float, long_runs: int = 1) -> None:
    """Record the run on ``key`` (JSON), sleep ``seconds`` on the first ``long_runs`` runs sharing ``key`` (later
    runs return at once), then record ``<job id>`` on ``<key>:done``."""
    runs = get_connection().incr(f"{key}:runs")
    record = _run_record(key, run=runs)
    if runs <= long_runs:
        time.sleep(seconds)
    get_connection().rpush(f"{key}:done", record["id"])


@job("pool")
def pool_span(key: str, seconds: float) -> None:
    """Sleep ``seconds``; record ``<pid>|<start>|<end>`` on ``key`` (a job of the concurrency-3 queue)."""
    started = time.time()
    time.sleep(seconds)
    get_connection().rpush(key, f"{os.getpid()}|{started!r}|{time.time()!r}")


@job("email")
def long_first_run(key: str, seconds: float) -> None:
    """Record the run on ``key`` (JSON); sleep ``seconds`` on the first run sharing ``key`` only; record
    ``<job id>`` on ``<key>:done``."""
    runs = get_connection().incr(f"{key}:runs")
    record = _run_record(key, run=runs)
    if runs == 1:
        time.sleep(seconds)
    get_connection().rpush(f"{key}:done", record["id"])


@job("email")
def report_progress(steps: list) -> str:
    """Report each of ``steps`` as the job's progress, in order."""
    running = current_job()
    assert running is not None
    for step in steps:
        running.update_progress(step)
    return "reported"


# Queue management (tests/test_queue_management.py, tests/test_queues_command.py).


@job("notifications", attempts=2, backoff=0)
def fail_first_runs(key: str, failures: int) -> int:
    """Record ``attempts_made`` of this run on ``key``; fail while the runs sharing ``key`` are ``failures`` or
    fewer (so a job retried after its attempts ran out completes)."""
    connection = get_connection()
    running = current_job()
    assert running is not None
    connection.rpush(key, str(running.attempts_made))
    if connection.incr(f"{key}:runs") <= failures:
        raise RuntimeError(f"failing on purpose, run {connection.get(f'{key}:runs').decode()}")
    return running.attempts_made


# Events and metrics (tests/test_events.py).


@job("email")
def fail_on_email(reason: str) -> None:
    """Raise ``RuntimeError(reason)``: a failing job of the "email" queue."""
    raise RuntimeError(reason)


# The job lifecycle under faults, and the execution modes (tests/test_lifecycle_faults.py, tests/test_modes.py).


@job("stalls")
def flow(key: str, seconds: float = 0) -> str:
    """Record this job's id on ``key`` (a run), sleep ``seconds``, and return the worker's name."""
    running = current_job()
    assert running is not None
    get_connection().rpush(key, running.id)
    time.sleep(seconds)
    return running.rq_job.worker_name


@job("stalls")
def fenced(key: str, seconds: float) -> str:
    """Record ``<worker>|<pid>`` on ``key``; sleep ``seconds`` on the first run sharing ``key``; return the worker."""
    connection = get_connection()
    running = current_job()
    assert running is not None
    first = connection.incr(f"{key}:runs") == 1
    connection.rpush(key, f"{running.rq_job.worker_name}|{os.getpid()}")
    if first:
        time.sleep(seconds)
    connection.rpush(f"{key}:done", running.rq_job.worker_name)
    return running.rq_job.worker_name


@job("stalls")
def exit_first_run(key: str) -> int:
    """Record the pid on ``key``; on the first run sharing ``key``, end this process at once (``os._exit``)."""
    connection = get_connection()
    connection.rpush(key, str(os.getpid()))
    if connection.incr(f"{key}:runs") == 1:
        os._exit(3)
    return os.getpid()


_leaked: list[bytes] = []


@job("leaky")
def leak(key: str, mib: int) -> int:
    """Keep ``mib`` MiB for good (a leaky job); record ``<pid>`` on ``key``."""
    _leaked.append(b"x" * (mib * 1024 * 1024))
    get_connection().rpush(key, str(os.getpid()))
    return os.getpid()


@job("threaded")
def nap(key: str, seconds: float) -> None:
    """Sleep ``seconds``; record ``<start>|<end>`` on ``key``."""
    started = time.time()
    time.sleep(seconds)
    get_connection().rpush(key, f"{started!r}|{time.time()!r}")


@job("email", name="tests.record_run")
def record_run(key: str, tag: str = "") -> None:
    """Push the run's job id, start time, scheduler tick and ``tag`` (JSON) onto the Redis list ``key``."""
    _record_run(key, tag)


@job("stalls", name="tests.record_run_stalls")
def record_run_stalls(key: str, tag: str = "") -> None:
    """``tests.record_run`` on the "stalls" queue (stall checks every second)."""
    _record_run(key, tag)


def _record_run(key: str, tag: str) -> None:
    running = current_job()
    assert running is not None
    tick = running.rq_job.connection.hget(f"rq:job:{running.id}", "tick")
    get_connection().rpush(key, json.dumps({"id": running.id, "at": time.time(), "tag": tag,
                                            "tick": int(tick) / 1000 if tick else None}))


@job("email")
def returns_unserializable(kind: str) -> object:
    """Return something JSON cannot carry: a set, a datetime, an object, or lists nested 10,000 deep."""
    import datetime

    if kind == "nested":
        value: list = []
        for _ in range(10_000):
            value = [value]
        return value
    return {"set": {1, 2}, "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5), "object": object()}[kind]


@job("email", name="tests.append_line")
def append_line(path: str, line: str) -> None:
    """Append ``line`` to the file ``path`` (one write, O_APPEND): a trace that outlives the Redis under test."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@job("stalls", name="tests.slow_trace")
def slow_trace(path: str, seconds: float) -> None:
    """Append "start <pid>" to the file ``path``, sleep ``seconds``, append "end <pid>" (a trace outside Redis)."""
    append_line(path, f"start {os.getpid()}")
    time.sleep(seconds)
    append_line(path, f"end {os.getpid()}")


@job("email", name="tests.count_users")
def count_users(key: str) -> int:
    """Push the number of users (a database query) onto the Redis list ``key``."""
    from django.contrib.auth.models import User

    count = User.objects.count()
    get_connection().rpush(key, count)
    return count


@job("email")
def multiply(a: int, b: int) -> int:
    """A @job that tests wrap in django-rq's decorator, for ``.delay(a=2, b=3)``. Not here: ``@django_rq.job``
    binds its queue's Redis connection when applied, and at import that is not yet the tests' own server."""
    return a * b


@job("email")
def exhaust_memory(room_mib: int) -> None:
    """Outgrow a box: allocate twice the ``room_mib`` left under an address-space limit set for this run, as a job
    on a memory-capped host (a container's limit) would. Raises MemoryError; the limit is lifted again after."""
    import resource

    import psutil

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (psutil.Process().memory_info().vms + room_mib * 2**20, hard))
    try:
        bytearray(2 * room_mib * 2**20)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
