"""``manage.py queues <sub-command>`` (issue 7, the command line), each run as a real process.

Against the session's own Redis (tests/conftest.py: REDIS_URL points at it) with real workers where a job must be
running. Exit status: 0 done, 1 refused (answered no, queue busy, unknown queue or job), 2 Redis unreachable.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from queue import Empty, SimpleQueue

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from config.redis_server import free_port
from queues import get_queue
from queues.conf import get_config
from tests.conftest import ROOT, manage, manage_env
from tests.helpers import kill_tree, values, wait_for, worker_process
from tests.test_queue_management import failed, finished, mentions
from tests.testapp import jobs


def queues(*args: str, answer: str = "", **env: str) -> subprocess.CompletedProcess:
    """``manage.py queues <args>`` (as ``conftest.run_manage``), ``answer`` on its stdin (closed after it)."""
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), "queues", *args], cwd=ROOT, env=manage_env(**env),
                          input=answer, capture_output=True, text=True, timeout=60, check=False)


class Output:
    """The lines a process prints, read by a thread as they come."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._queue: SimpleQueue[str | None] = SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, done: Callable[[list[str]], object], timeout: float = 30) -> list[str]:
        """Wait until ``done(lines so far)`` is true; the lines so far."""
        deadline = time.monotonic() + timeout
        while not done(self.lines):
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except Empty:
                raise AssertionError(f"timed out; output so far: {self.lines}") from None
            if line is None:
                raise AssertionError(f"the process ended ({self.proc.wait()}); output: {self.lines}")
            self.lines.append(line)
        return self.lines


@contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen, Output]]:
    """``manage.py queues <args>`` as a long-running process and its output; killed if the test leaves it running."""
    proc = manage("queues", *args)
    try:
        yield proc, Output(proc)
    finally:
        if proc.poll() is None:
            kill_tree(proc)
            proc.wait(timeout=10)


# --- status -----------------------------------------------------------------------------------------------------


def test_status__json_is_get_job_counts_of_every_queue(redis_client: redis.Redis) -> None:
    """Print exactly {queue: get_job_counts()} for every queue in QUEUES."""
    finished("notifications", 2)
    failed(1)
    email = get_queue("email")
    email.add(jobs.record, {"key": "k", "value": "v"})
    email.add(jobs.record, {"key": "k", "value": "p"}, priority=2)
    email.add(jobs.record, {"key": "k", "value": "d"}, delay=600)
    email.pause()
    result = queues("status", "--json")
    assert result.returncode == 0, result.stderr
    expected = {name: get_queue(name).get_job_counts() for name in get_config().queues}
    assert json.loads(result.stdout) == expected
    assert expected["email"]["paused"] == 2 and expected["notifications"]["completed"] == 2


def test_status__table_shows_counts_pause_limiter_concurrency_and_workers(redis_client: redis.Redis) -> None:
    """Print one row per queue: its counts, paused or not, limiter, concurrency and the workers serving it."""
    get_queue("notifications").add(jobs.note, {"key": "k", "value": "v"})
    get_queue("limited").pause()
    with worker_process("rqworker", "email") as proc:
        wait_for(lambda: redis_client.scard("rq:workers:email") == 1, 30, "the worker to register", proc)
        result = queues("status")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line and line[0] != "("}
    assert list(rows) == list(get_config().queues)
    head = result.stdout.splitlines()[0].split()
    assert head == ["queue", "waiting", "prioritized", "delayed", "active", "completed", "failed", "rate-limited",
                    "paused", "limiter", "concurrency", "workers"]
    assert rows["notifications"][1] == "1" and rows["notifications"][8] == "no"
    assert rows["limited"][8:] == ["yes", "10", "/", "1", "s", "1", "0"]
    assert rows["email"][-1] == "1"  # one worker serves it


def test_status__watch_refreshes_until_interrupted(redis_client: redis.Redis) -> None:
    """Print the counts again every SECONDS, the new ones included, and exit 0 on Ctrl-C."""
    with running("status", "--json", "--watch", "0.2") as (proc, output):
        first = output.until(lambda lines: len(lines) >= 1)
        assert json.loads(first[0])["email"]["waiting"] == 0
        get_queue("email").add(jobs.record, {"key": "k", "value": "v"})
        output.until(lambda lines: lines and json.loads(lines[-1])["email"]["waiting"] == 1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


# --- pause, resume ----------------------------------------------------------------------------------------------


def test_pause_and_resume__set_and_clear_the_flag(redis_client: redis.Redis) -> None:
    """Pause the queue (exit 0, workers stop taking its jobs) and resume it."""
    result = queues("pause", "email")
    assert (result.returncode, result.stdout.strip()) == (
        0, "Paused 'email': workers take none of its jobs until it is resumed.")
    assert get_queue("email").is_paused()
    assert queues("resume", "email").returncode == 0
    assert not get_queue("email").is_paused()


# --- retry ------------------------------------------------------------------------------------------------------


def test_retry__one_job_by_id(redis_client: redis.Redis) -> None:
    """Retry one failed job (exit 0); refuse a job that is waiting, or unknown, with exit 1 and the reason."""
    [job_id] = failed(1)
    result = queues("retry", "notifications", "--job", job_id)
    assert result.returncode == 0, result.stderr
    assert get_queue("notifications").get_job(job_id).get_state() == "waiting"
    again = queues("retry", "notifications", "--job", job_id)
    assert again.returncode == 1
    assert f"Job {job_id} is waiting: only a failed or completed job can be retried." in again.stderr
    unknown = queues("retry", "notifications", "--job", "nope")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "CommandError: Queue 'notifications' has no job 'nope'.")


def test_retry__all_failed_asks_first(redis_client: redis.Redis) -> None:
    """Ask before retrying every failed job: "n" changes nothing (exit 1), "y" retries them all (exit 0)."""
    ids = failed(3)
    refused = queues("retry", "notifications", answer="n\n")
    assert refused.returncode == 1
    assert "Retry all 3 failed jobs of 'notifications'? [y/N]" in refused.stdout
    assert "not confirmed" in refused.stderr
    assert get_queue("notifications").get_job_counts()["failed"] == 3
    done = queues("retry", "notifications", answer="y\n")
    assert done.returncode == 0, done.stderr
    assert "Retried 3 failed jobs of 'notifications'." in done.stdout
    assert [job.id for job in get_queue("notifications").get_jobs("waiting")] == ids


def test_retry__completed_jobs_with_state(redis_client: redis.Redis) -> None:
    """Retry every completed job with --state completed --yes (no question asked)."""
    ids = finished("notifications", 2)
    result = queues("retry", "notifications", "--state", "completed", "--yes")
    assert (result.returncode, result.stdout.strip()) == (0, "Retried 2 completed jobs of 'notifications'.")
    assert [job.id for job in get_queue("notifications").get_jobs("waiting")] == ids


def test_call_command__works_in_process_and_raises_command_error_with_the_exit_status(
        redis_client: redis.Redis) -> None:
    """Run through call_command too: output to the given stream, refusals as CommandError carrying exit status 1."""
    out = io.StringIO()
    call_command("queues", "status", "--json", stdout=out)
    assert json.loads(out.getvalue())["email"] == get_queue("email").get_job_counts()
    with pytest.raises(CommandError, match="Unknown queue 'nope'") as refused:
        call_command("queues", "pause", "nope")
    assert refused.value.returncode == 1


# --- clean, drain, obliterate -----------------------------------------------------------------------------------


def test_clean__removes_old_jobs_of_a_state(redis_client: redis.Redis) -> None:
    """Clean the failed jobs older than --grace, at most --limit; without --yes and no answer, do nothing."""
    ids = failed(3)
    assert queues("clean", "notifications", "--state", "failed", answer="").returncode == 1
    assert queues("clean", "notifications", "--state", "failed", "--grace", "3600", "--yes").stdout.strip() == (
        "Removed 0 failed jobs from 'notifications'.")
    result = queues("clean", "notifications", "--state", "failed", "--limit", "2", "--yes")
    assert (result.returncode, result.stdout.strip()) == (0, "Removed 2 failed jobs from 'notifications'.")
    assert mentions(redis_client, ids[:2]) == []
    assert [job.id for job in get_queue("notifications").get_failed()] == ids[2:]


def test_clean__bad_arguments_exit_2_with_the_reason(redis_client: redis.Redis) -> None:
    """Refuse an unknown state or a negative grace before doing anything (argparse: exit 2)."""
    result = queues("clean", "notifications", "--state", "active", "--yes")
    assert result.returncode == 2 and "invalid choice: 'active'" in result.stderr
    result = queues("clean", "notifications", "--grace", "-1", "--yes")
    assert result.returncode == 2 and "seconds must be 0 or more" in result.stderr


def test_drain__with_delayed_after_confirmation(redis_client: redis.Redis) -> None:
    """Drain waiting and prioritized jobs, and delayed ones with --delayed, once confirmed."""
    queue = get_queue("email")
    ids = [queue.add(jobs.record, {"key": "k", "value": "w"}).id,
           queue.add(jobs.record, {"key": "k", "value": "p"}, priority=1).id,
           queue.add(jobs.record, {"key": "k", "value": "d"}, delay=600).id]
    result = queues("drain", "email", "--delayed", answer="y\n")
    assert result.returncode == 0, result.stderr
    assert "Remove the 3 waiting, prioritized and delayed jobs of 'email'? [y/N]" in result.stdout
    assert "Removed 3 jobs from 'email'." in result.stdout
    assert mentions(redis_client, ids) == []


def test_obliterate__refused_while_active_then_forced(redis_client: redis.Redis) -> None:
    """Refuse (exit 1) while a worker runs a job, naming --force; with --force --yes, remove everything."""
    queue = get_queue("email")
    waiting = queue.add(jobs.record, {"key": "k", "value": "v"}, priority=5).id
    with worker_process("rqworker", "email") as proc:
        slow = queue.add(jobs.slow, {"key": "slow", "seconds": 30}, priority=1).id
        wait_for(lambda: values(redis_client, "slow") == ["started"], 30, "the slow job to start", proc)
        refused = queues("obliterate", "email", "--yes")
        assert refused.returncode == 1
        assert "Queue 'email' has 1 active job(s)" in refused.stderr and "force" in refused.stderr
        assert queue.get_job(waiting) is not None
        forced = queues("obliterate", "email", "--force", "--yes")
        assert forced.returncode == 0, forced.stderr
        assert forced.stdout.strip().endswith("Obliterated 'email': 2 jobs removed.")
        assert mentions(redis_client, [waiting, slow]) == []


def test_obliterate__asks_and_removes_every_key(redis_client: redis.Redis) -> None:
    """Ask first ("n": exit 1, nothing removed); once confirmed, leave no key of the queue."""
    finished("notifications", 2)
    assert queues("obliterate", "notifications", answer="no\n").returncode == 1
    assert get_queue("notifications").get_job_counts()["completed"] == 2
    result = queues("obliterate", "notifications", answer="y\n")
    assert result.returncode == 0, result.stderr
    assert [key for key in redis_client.keys("*") if b"notifications" in key or key.startswith(b"rq:job:")] == []


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("pause", "nope"), ("drain", "nope", "--yes"), ("events", "nope")])
def test_unknown_queue__exit_1_listing_the_defined_ones(redis_client: redis.Redis, args: tuple[str, ...]) -> None:
    """Refuse a queue QUEUES does not define, listing those it does."""
    result = queues(*args)
    assert result.returncode == 1
    assert result.stderr.strip() == ("CommandError: Unknown queue 'nope': QUEUES defines "
                                     + ", ".join(get_config().queues) + ".")


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("pause", "email"), ("obliterate", "email")])
def test_redis_unreachable__exit_2_naming_host_and_port_never_the_password(redis_client: redis.Redis,
                                                                           args: tuple[str, ...]) -> None:
    """Exit 2 at once with one line naming host:port (not the password) when nothing listens there."""
    port = free_port()
    result = queues(*args, REDIS_URL=f"redis://:s3cret-pw@127.0.0.1:{port}/0")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"CommandError: Redis cannot be reached at 127.0.0.1:{port}/0: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "s3cret-pw" not in result.stderr


# --- events -----------------------------------------------------------------------------------------------------


def test_events__prints_past_and_live_events_one_line_each(redis_client: redis.Redis) -> None:
    """Print the stream from --from, then new events as they happen, one JSON line each; exit 0 on SIGTERM."""
    queue = get_queue("email")
    job_id = queue.add(jobs.record, {"key": "k", "value": "v"}).id
    queue.remove_job(job_id)
    with running("events", "email", "--from", "0", "--json") as (proc, output):
        lines = output.until(lambda lines: any('"removed"' in line for line in lines))
        seen = [json.loads(line) for line in lines]
        assert [event["event"] for event in seen] == ["added", "waiting", "removed"]
        assert seen[-1] | {"id": ""} == {"id": "", "event": "removed", "job_id": job_id, "prev": "waiting"}
        queue.pause()
        live = output.until(lambda lines: '"paused"' in lines[-1])
        assert json.loads(live[-1])["event"] == "paused"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_events__plain_lines_name_the_event_and_its_fields(redis_client: redis.Redis) -> None:
    """Print ``<time> <id> <event> key=value ...`` for each event."""
    queue = get_queue("email")
    job_id = queue.add(jobs.record, {"key": "k", "value": "v"}).id
    with running("events", "email", "--from", "0") as (proc, output):
        [line] = output.until(lambda lines: len(lines) >= 1)
        first_id = redis_client.xrange("rq:events:email", count=1)[0][0].decode()
        assert line.split()[1:] == [first_id, "added", f"job_id={job_id}", "name=tests.record"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


# --- schedulers -------------------------------------------------------------------------------------------------

def test_schedulers__lists_id_job_rule_next_run_and_runs_so_far(redis_client: redis.Redis) -> None:
    get_queue("email").upsert_job_scheduler("digest", "tests.record", {"key": "k", "value": "v"},
                                            pattern="0 9 * * *", tz="Europe/Berlin")
    get_queue("cleanup").upsert_job_scheduler("tidy", "notifications.cleanup", every=3600, limit=24)
    done = queues("schedulers")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["queue", "id", "job", "rule", "next", "run", "runs", "last", "run", "from"]
    digest = next(row for row in rows if " digest " in row)
    assert "tests.record" in digest and "cron '0 9 * * *' (Europe/Berlin)" in digest and "api" in digest
    assert "09:00:00 UTC" in digest or "08:00:00 UTC" in digest or "07:00:00 UTC" in digest
    assert "every 3600 s" in next(row for row in rows if " tidy " in row) and "0 / 24" in done.stdout

    only = queues("schedulers", "cleanup", "--json")
    assert [item["id"] for item in json.loads(only.stdout)] == ["tidy"]


def test_schedulers__remove_and_run_now(redis_client: redis.Redis) -> None:
    queue = get_queue("email")
    queue.upsert_job_scheduler("digest", "tests.record", {"key": "k", "value": "v"}, every=3600)
    ran = queues("schedulers", "--run", "digest")
    assert ran.returncode == 0, ran.stderr
    assert queue.get_job_counts()["waiting"] == 1 and "a run of 'digest' now" in ran.stdout

    removed = queues("schedulers", "--remove", "digest")
    assert removed.returncode == 0, removed.stderr
    assert queue.get_job_scheduler("digest") is None and queue.get_job_counts()["delayed"] == 0

    missing = queues("schedulers", "--remove", "digest")
    assert missing.returncode == 1 and "No job scheduler 'digest'" in missing.stderr
    unknown = queues("schedulers", "nope")
    assert unknown.returncode == 1 and "Unknown queue 'nope'" in unknown.stderr
