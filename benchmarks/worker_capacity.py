"""What the worker class costs: no-op jobs per second through ONE worker of this app against plain RQ's
worker of the same kind, same run, same private Redis.

    .venv/bin/python benchmarks/worker_capacity.py [--jobs 1000]

Four workers, one after the other, each a ``--burst`` run in a subprocess (``DJANGO_SETTINGS_MODULE``
defaults to ``tests.settings``: one worker process per ``rqworker`` on the email queue, no rate limit):

- forking (a work horse per job): ``manage.py rqworker email --burst`` against
  ``rq worker --burst --serializer JSONSerializer plain``;
- non-forking: ``manage.py rqworker email --burst --worker-class queues.worker.SimpleWorker`` against
  ``rq worker --burst --worker-class rq.worker.SimpleWorker --serializer JSONSerializer plain``.

For each worker, on a flushed server: first a burst run on the empty queue (start-up and shut-down alone),
then N no-op jobs added at once (this app: ``get_queue("email").add_bulk`` of ``tests.testapp.jobs.add``
with ``remove_on_complete=False``; RQ: ``enqueue_many`` of ``benchmarks.plain_jobs.noop``), CONFIG RESETSTAT,
and a burst run that drains them. Nothing else talks to Redis until it exits. Reported:

- jobs/s from the job hashes: N / (last ``ended_at`` - first ``started_at``), both written by the worker;
- jobs/s from wall time: N / (wall time of the burst run - wall time of the empty burst run);
- Redis commands per job: INFO commandstats after the drain (commands inside Lua scripts count), total / N,
  and net of the empty run's commands (start-up, registration, shut-down).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    child_env,
    command_stats,
    load_average,
    machine,
    parse_time,
    private_redis,
    run_header,
    setup_django,
    start,
    stop,
)

RUN_TIMEOUT = 300.0  # seconds one burst run may take
JSON = "rq.serializers.JSONSerializer"


@dataclass
class Row:
    kind: str  # "forking" or "non-forking"
    side: str  # "this app" or "plain RQ"
    command: str
    empty_wall: float = 0.0
    empty_calls: int = 0
    wall: float = 0.0
    span: float = 0.0  # first started_at .. last ended_at
    calls: dict[str, int] = field(default_factory=dict)
    finished: int = 0


def burst(args: list[str], log: Path) -> float:
    """Run a burst worker to its end (it must exit 0); its wall time, process start to exit."""
    began = time.monotonic()
    proc = start(args, log, child_env())
    try:
        code = proc.wait(RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError(f"{args} ran over {RUN_TIMEOUT} s:\n{log.read_text(errors='replace')[-3000:]}") from None
    wall = time.monotonic() - began
    if code != 0:
        raise RuntimeError(f"{args} exited {code}:\n{log.read_text(errors='replace')[-3000:]}")
    return wall


def measure(row: Row, args: list[str], add: Any, client: Any, directory: Path, jobs: int) -> None:
    client.flushall()
    client.config_resetstat()
    row.empty_wall = burst(args, directory / f"{row.side}-{row.kind}-empty.log")
    row.empty_calls = sum(command_stats(client).values())

    client.flushall()
    ids = add()
    client.config_resetstat()
    row.wall = burst(args, directory / f"{row.side}-{row.kind}.log")
    row.calls = command_stats(client)

    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at", "status")
    hashes = pipe.execute()
    row.finished = sum(1 for _s, _e, status in hashes if status == b"finished")
    starts = [t for s, _e, _st in hashes if (t := parse_time(s)) is not None]
    ends = [t for _s, e, _st in hashes if (t := parse_time(e)) is not None]
    row.span = max(ends) - min(starts) if starts and ends else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="no-op jobs per worker (default 1000)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not 10 <= args.jobs <= 20_000:
        parser.error("--jobs must be 10..20000")

    import redis
    import rq
    from rq.serializers import JSONSerializer

    load = load_average()
    began = time.monotonic()
    with private_redis() as (server, directory):
        setup_django()
        from queues import get_queue
        from tests.testapp import jobs

        client = redis.Redis.from_url(server.url)
        plain = rq.Queue("plain", connection=redis.Redis.from_url(server.url), serializer=JSONSerializer)

        def add_app() -> list[str]:
            items = [{"job": jobs.add, "data": {"a": i, "b": 0}, "options": {"remove_on_complete": False}}
                     for i in range(args.jobs)]
            return [handle.id for handle in get_queue("email").add_bulk(items)]

        def add_plain() -> list[str]:
            datas = [rq.Queue.prepare_data("benchmarks.plain_jobs.noop", kwargs={"a": i, "b": 0})
                     for i in range(args.jobs)]
            return [job.id for job in plain.enqueue_many(datas)]

        app_cmd = [sys.executable, "manage.py", "rqworker", "email", "--burst"]
        rq_cmd = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--serializer", JSON, "--url", server.url]
        plan = [
            (Row("forking", "this app", "manage.py rqworker email --burst"), app_cmd, add_app),
            (Row("forking", "plain RQ", "rq worker --burst"), [*rq_cmd, "plain"], add_plain),
            (Row("non-forking", "this app",
                 "manage.py rqworker email --burst --worker-class queues.worker.SimpleWorker"),
             [*app_cmd, "--worker-class", "queues.worker.SimpleWorker"], add_app),
            (Row("non-forking", "plain RQ", "rq worker --burst --worker-class rq.worker.SimpleWorker"),
             [*rq_cmd, "--worker-class", "rq.worker.SimpleWorker", "plain"], add_plain),
        ]
        try:
            for row, command, add in plan:
                measure(row, command, add, client, directory, args.jobs)
        finally:
            client.close()
            plain.connection.close()
    elapsed = time.monotonic() - began

    rows = [row for row, _command, _add in plan]
    n = args.jobs
    info = machine()
    print(f"# one worker at a time draining {n} no-op jobs added at once (--burst), one after the other; "
          f"{elapsed:.0f} s wall")
    print(run_header(info, load) + "; JSON serializer on both sides\n")
    print("| kind | worker | jobs/s, first start to last end | ms/job | jobs/s, wall minus empty run | "
          "burst wall s | empty-run wall s | Redis commands / job | net of the empty run | finished |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        total = sum(r.calls.values())
        print(f"| {r.kind} | {r.side}: `{r.command}` | {n / r.span:.1f} | {r.span / n * 1000:.2f} | "
              f"{n / (r.wall - r.empty_wall):.1f} | {r.wall:.2f} | {r.empty_wall:.2f} | {total / n:.2f} | "
              f"{(total - r.empty_calls) / n:.2f} | {r.finished} |")
    print("\nRedis commands per job, by command (drain run, total / N):\n")
    for r in rows:
        parts = ", ".join(f"{name} {calls / n:.2f}" for name, calls in sorted(r.calls.items(), key=lambda kv: -kv[1])
                          if calls / n >= 0.005)
        print(f"- {r.kind}, {r.side}: {parts}")
    if args.json:
        args.json.write_text(json.dumps({"args": {"jobs": n}, "machine": info, "load_before": load,
                                         "elapsed_s": elapsed, "rows": [asdict(r) for r in rows]}, indent=2))
    return 0 if all(r.finished == n for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
