"""Execution modes with real worker processes (issue 11): "processes" (long-lived worker processes running jobs
in-process), "threads" (many jobs at once in one process) and "fork" (a process per job).

The tests that must hold in every mode run their workers with ``QUEUES_TEST_MODE`` (tests/settings.py); the
others use the queues that name their own mode: "leaky" (processes, recycled after 4 jobs or past 400 MiB) and
"threaded" (threads, concurrency 50).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from queues import get_queue
from tests.conftest import ROOT, manage_env
from tests.helpers import Workers, kill_tree, output, values, wait_for
from tests.test_worker_controls import wait_listening
from tests.testapp import jobs


def test_modes__a_job_ending_its_own_process_is_recovered_and_the_worker_goes_on(redis_client: redis.Redis,
                                                                                mode: str, workers: Workers) -> None:
    """Run a job that calls os._exit on its first run: its process is replaced (or, forking, only the job process
    dies), the job is recovered as stalled and completes on its second run, and the next job runs too."""
    proc = workers.start("rqworker", "stalls", env=manage_env(QUEUES_TEST_MODE=mode))
    wait_listening(redis_client, "stalls", [proc])
    queue = get_queue("stalls")
    doomed = queue.add(jobs.exit_first_run, {"key": "pids"})
    wait_for(lambda: doomed.get_state() == "completed", 20, "the job to be recovered and complete", proc)
    after = queue.add(jobs.flow, {"key": "after"})
    wait_for(lambda: after.get_state() == "completed", 20, "the next job to run", proc)

    first, second = (int(pid) for pid in values(redis_client, "pids"))
    print(f"{mode}: first run in pid {first}, second in {second}")
    assert first != second  # the process that ran it is gone
    assert doomed.rq_job.connection.hget(f"rq:job:{doomed.id}", "stalled_count") == b"1"
    assert proc.poll() is None  # the rqworker command itself goes on
    if mode == "fork":
        assert "its job process died (exit code 3)" in output(proc)
    else:
        assert "exited (3); starting another" in output(proc)


def test_modes__a_process_is_recycled_after_max_jobs_per_process(redis_client: redis.Redis,
                                                                 workers: Workers) -> None:
    """Replace a "processes" worker after its 4th job (max_jobs_per_process 4): 9 jobs run in 3 processes, 4, 4, 1."""
    proc = workers.start("rqworker", "leaky")
    wait_listening(redis_client, "leaky", [proc])
    handles = [get_queue("leaky").add(jobs.leak, {"key": "pids", "mib": 0}) for _ in range(9)]
    wait_for(lambda: all(handle.get_state() == "completed" for handle in handles), 30, "the jobs to complete", proc)

    pids = values(redis_client, "pids")
    runs = [pids.count(pid) for pid in dict.fromkeys(pids)]
    assert runs == [4, 4, 1], pids
    assert "exited (" not in output(proc)  # recycled, not crashed


def test_modes__a_leaky_job_gets_its_process_recycled(redis_client: redis.Redis, workers: Workers) -> None:
    """Replace a "processes" worker whose memory peaked past max_memory_per_process (400 MiB) after its current job:
    a job keeping 250 MiB makes the second such job the last of its process."""
    proc = workers.start("rqworker", "leaky")
    wait_listening(redis_client, "leaky", [proc])
    handles = [get_queue("leaky").add(jobs.leak, {"key": "pids", "mib": 250}) for _ in range(3)]
    wait_for(lambda: all(handle.get_state() == "completed" for handle in handles), 30, "the jobs to complete", proc)

    pids = values(redis_client, "pids")
    assert pids[0] == pids[1] != pids[2], pids
    assert "over max_memory_per_process (400 MiB): recycling it" in output(proc)


def test_modes__threads_run_50_one_second_jobs_at_once(redis_client: redis.Redis, workers: Workers) -> None:
    """Run 50 jobs that each sleep 1 s on one "threads" worker at concurrency 50: all done within 3 s, not 50."""
    proc = workers.start("rqworker", "threaded")
    wait_listening(redis_client, "threaded", [proc])
    handles = get_queue("threaded").add_bulk([{"job": jobs.nap, "data": {"key": "spans", "seconds": 1}}
                                              for _ in range(50)])
    wait_for(lambda: redis_client.llen("spans") == 50, 20, "the 50 jobs to end", proc)

    spans = [tuple(float(v) for v in span.split("|")) for span in values(redis_client, "spans")]
    took = max(end for _, end in spans) - min(start for start, _ in spans)
    print(f"50 × 1 s in threads: first start to last end {took:.2f} s")
    assert took < 3
    wait_for(lambda: all(handle.get_state() == "completed" for handle in handles), 10, "every job recorded", proc)
    assert len(output(proc).split("taking jobs from threaded")) == 2  # one worker process did it all


def test_modes__rq_info_lists_the_workers_and_the_jobs(redis_client: redis.Redis, mode: str,
                                                      workers: Workers) -> None:
    """Show this app's workers and waiting jobs in RQ's own `rq info`, whatever the mode."""
    proc = workers.start("rqworker", "stalls", "--name", f"info-{mode}", env=manage_env(QUEUES_TEST_MODE=mode))
    wait_listening(redis_client, "stalls", [proc])
    get_queue("stalls").pause()
    for _ in range(3):
        get_queue("stalls").add(jobs.flow, {"key": "runs"})

    url = manage_env()["REDIS_URL"]
    rq_cli = str(Path(sys.executable).parent / "rq")
    info = subprocess.run([rq_cli, "info", "--url", url], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          check=False)
    assert info.returncode == 0, info.stderr
    print(info.stdout)
    assert "stalls       |███ 3, 0 executing, 0 finished, 0 failed" in info.stdout
    assert f"info-{mode} (" in info.stdout and "idle stalls." in info.stdout
    assert "1 workers, 1 queues" in info.stdout


def test_fork_mode__the_outcome_a_job_process_hands_over_keeps_return_value_and_error() -> None:
    """A job process (fork mode) hands its outcome to its worker as JSON: the job_completed / job_failed signals
    there still get the return value, and the error's class and message."""
    from queues.lifecycle import Outcome

    done = Outcome.from_json(Outcome("completed", return_value={"sent": True, "to": 3}).to_json())
    assert done.return_value == {"sent": True, "to": 3} and done.error is None
    failed = Outcome.from_json(Outcome("failed", error=RuntimeError("SMTP said no")).to_json())
    assert str(failed.error) == "RuntimeError: SMTP said no"


def test_supervisor__a_worker_that_keeps_dying_is_restarted_ever_more_slowly() -> None:
    """A worker process that crashes at every start (a broken deploy) is restarted after 1, 2, 4 … s, at most 60 s
    apart, so it never spins the host's CPU; one that lived a minute starts the count again (queues.pool)."""
    from queues.pool import restart_delay

    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


# A worker whose keeper thread looks at the spool as often as it wakes (every 10 ms): it opens its database
# connection, queries and closes it all the time.
_BUSY_KEEPER = """
import django
django.setup()
from queues import spool
spool.FLUSH_INTERVAL = 0
from django.core.management import call_command
call_command("rqworker", "email")
"""


@pytest.mark.django_db(transaction=True)
def test_modes__fork__job_processes_forked_while_the_keeper_uses_the_database_run(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    """Fork mode: 300 jobs that query the database, each in a process forked while the keeper thread opens, queries
    and closes its own database connection every 10 ms: all complete. A lock of the SQLite library (its allocator's
    mutex) that the keeper held at a fork used to stay locked in the job process, which hung in its first query
    (CI: 1 run in 4 of the fork pass; this test, 3 runs in 4 before the fix)."""
    from tests.notifications_fixtures import database_url

    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", _BUSY_KEEPER], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=manage_env(QUEUES_TEST_MODE="fork", DATABASE_URL=database_url()))
    proc.log = log  # type: ignore[attr-defined]
    try:
        for _ in range(300):
            get_queue("email").add(jobs.count_users, {"key": "counts"})
        wait_for(lambda: redis_client.llen("counts") == 300, 60, "the 300 jobs to run", proc)
    finally:
        kill_tree(proc)
        proc.wait(10)
        print(log.read_text())
    assert values(redis_client, "counts") == ["0"] * 300
