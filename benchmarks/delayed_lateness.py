"""How late delayed jobs start: this app's ``add(..., delay=d)`` against plain RQ's ``enqueue_in``, same run.

    .venv/bin/python benchmarks/delayed_lateness.py [--jobs 300] [--spread 10]

(``DJANGO_SETTINGS_MODULE`` defaults to ``tests.settings``, whose test app registers the job used here and
whose email queue has one worker process per ``rqworker`` and no rate limit.)

Both sides get the same N delays, drawn uniformly from [1, spread] seconds with a fixed seed, all added at
once to an idle queue, with ONE real forking worker process each, one after the other (this app first):

- this app: ``manage.py rqworker email`` (this app's worker class, which promotes due jobs itself, and on an
  idle queue sleeps the last 100 ms before the next due time itself: ``RQQueue.dequeue_any``) and
  ``get_queue("email").add(tests.testapp.jobs.add, {...}, delay=d)``;
- plain RQ: ``rq worker --with-scheduler plain`` (RQ's scheduler process, polling once a second) and
  ``rq.Queue("plain").enqueue_in(timedelta(seconds=d), "benchmarks.plain_jobs.noop", ...)``.

Lateness = the job's ``started_at`` (RQ writes it in ``rq:job:<id>`` when the job starts in the work horse)
minus its due time (the moment it was added + d); negative means it started early. The script starts its
own Redis server on a free loopback port and stops it, and the workers, at the end.
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    child_env,
    load_average,
    machine,
    nearest_rank,
    parse_time,
    private_redis,
    run_header,
    setup_django,
    start,
    stop,
    wait_until,
)

START_TIMEOUT = 60.0  # seconds a worker may take to register
DRAIN_MARGIN = 60.0  # seconds past the last due time for every job to finish


def quiet_until(when: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``when`` (POSIX time) without sending Redis anything.

    Any command wakes Redis's event loop, and a blocked client's timeout is only noticed when the loop
    wakes (``hz`` times a second with no traffic): polling while the jobs fall due would make the idle
    worker's wake-ups more punctual than they are without this benchmark watching.
    """
    while (left := when - time.time()) > 0:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(min(left, 0.5))


Run = tuple[float | None, float | None, float | None, str]  # enqueued_at, started_at, ended_at, status


def read_runs(client: Any, ids: list[str]) -> list[Run]:
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"rq:job:{job_id}", "enqueued_at", "started_at", "ended_at", "status")
    return [(parse_time(q), parse_time(s), parse_time(e), (st or b"").decode()) for q, s, e, st in pipe.execute()]


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"n": len(values), "p50": nearest_rank(values, 50), "p99": nearest_rank(values, 99),
            "max": max(values), "min": min(values), "mean": statistics.fmean(values),
            "early": sum(1 for v in values if v < 0), "over_100ms": sum(1 for v in values if v > 100)}


def summarize(name: str, due: list[float], runs: list[Run]) -> dict[str, Any]:
    """Lateness statistics, and where the time went.

    ``enqueued_at`` in the finished job's hash is when the job was moved from the scheduled registry to the
    waiting list (this app's worker rewrites it when it promotes the job; RQ's scheduler when it enqueues
    it), so lateness splits into *promotion* (enqueued_at - due) and *pick-up* (started_at - enqueued_at:
    the worker taking the job, forking the work horse, and the horse's bookkeeping before the call).
    """
    done = [(d, q, s, e) for d, (q, s, e, _st) in zip(due, runs, strict=True) if s is not None and q is not None]
    statuses: dict[str, int] = {}
    for *_times, status in runs:
        statuses[status] = statuses.get(status, 0) + 1
    lateness = [(s - d) * 1000 for d, q, s, e in done]
    # A job waited behind another when the one worker started another job between this job's due time and
    # its own start: its lateness is partly queueing. The others were due while the worker was free (or
    # about to be) and show the wake-up itself.
    starts = sorted(s for _d, _q, s, _e in done)
    alone = [(s - d) * 1000 for d, q, s, e in done
             if s <= d or bisect.bisect_left(starts, s) == bisect.bisect_right(starts, d)]
    return {
        "name": name, "jobs": len(due), "not_run": len(due) - len(done), "statuses": statuses,
        "all": stats(lateness),
        "not_queued": stats(alone),
        "promotion": stats([(q - d) * 1000 for d, q, s, e in done]),
        "pickup": stats([(s - q) * 1000 for d, q, s, e in done]),
        "run_ms_p50": nearest_rank([(e - s) * 1000 for _d, _q, s, e in done if e is not None], 50) if done else None,
        "raw": {"due": due, "runs": runs},
    }


def describe_queue(name: str) -> str:
    from queues.conf import get_definition

    definition = get_definition(name)
    return (f"queue {name!r}: concurrency {getattr(definition, 'concurrency', 1)}, "
            f"limiter {getattr(definition, 'limiter', None)}")


def run_app(client: Any, delays: list[float], directory: Path) -> dict[str, Any]:
    from queues import get_queue
    from tests.testapp import jobs

    log = directory / "app-worker.log"
    worker = start([sys.executable, "manage.py", "rqworker", "email"], log, child_env())
    try:
        wait_until(lambda: client.scard("rq:workers:email") > 0, START_TIMEOUT, "the app's worker", worker, log)
        time.sleep(1.0)  # let it settle into its blocking wait
        queue = get_queue("email")
        ids, due = [], []
        for i, delay in enumerate(delays):
            # remove_on_complete=False: the email queue keeps only the newest 100 completed jobs by default,
            # and the benchmark reads every job's hash afterwards.
            handle = queue.add(jobs.add, {"a": i, "b": 0}, delay=delay, remove_on_complete=False)
            ids.append(handle.id)
            # add() computes the due time from the same clock reading it stores as enqueued_at.
            due.append(handle.rq_job.enqueued_at.timestamp() + delay)
        quiet_until(max(due) + 0.5, worker, log)
        wait_until(lambda: client.zcard("rq:finished:email") + client.zcard("rq:failed:email") >= len(ids),
                   DRAIN_MARGIN, "the app's jobs to finish", worker, log, step=0.5)
        runs = read_runs(client, ids)
    finally:
        code = stop(worker)
    result = summarize("this app (rqworker, delay=)", due, runs)
    result["worker_exit"] = code
    return result


def run_plain(client: Any, url: str, delays: list[float], directory: Path) -> dict[str, Any]:
    import redis
    import rq
    from rq.serializers import JSONSerializer

    log = directory / "rq-worker.log"
    worker = start([sys.executable, "-m", "rq.cli", "worker", "--with-scheduler", "plain", "--url", url,
                    "--serializer", "rq.serializers.JSONSerializer"], log, child_env())
    connection = redis.Redis.from_url(url)
    try:
        wait_until(lambda: client.scard("rq:workers:plain") > 0 and client.exists("rq:scheduler-lock:plain"),
                   START_TIMEOUT, "the plain RQ worker and its scheduler", worker, log)
        time.sleep(1.0)
        queue = rq.Queue("plain", connection=connection, serializer=JSONSerializer)
        ids, due = [], []
        for i, delay in enumerate(delays):
            before = time.time()  # enqueue_in's first step is now() + delay
            job = queue.enqueue_in(timedelta(seconds=delay), "benchmarks.plain_jobs.noop", a=i, b=0)
            ids.append(job.id)
            due.append(before + delay)
        quiet_until(max(due) + 1.5, worker, log)  # RQ may start a job up to 1 s late
        wait_until(lambda: client.zcard("rq:finished:plain") + client.zcard("rq:failed:plain") >= len(ids),
                   DRAIN_MARGIN, "the plain RQ jobs to finish", worker, log, step=0.5)
        runs = read_runs(client, ids)
    finally:
        code = stop(worker)
        connection.close()
    result = summarize("plain RQ (rq worker --with-scheduler, enqueue_in)", due, runs)
    result["worker_exit"] = code
    return result


def table(results: list[dict[str, Any]], key: str) -> str:
    lines = ["| | jobs | p50 ms | p99 ms | max ms | min ms | mean ms | started early | over 100 ms late |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        s = result[key]
        if not s:
            lines.append(f"| {result['name']} | 0 | | | | | | | |")
            continue
        lines.append(f"| {result['name']} | {s['n']} | {s['p50']:.1f} | {s['p99']:.1f} | {s['max']:.1f} | "
                     f"{s['min']:.1f} | {s['mean']:.1f} | {s['early']} | {s['over_100ms']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="delayed jobs per side (default 300)")
    parser.add_argument("--spread", type=float, default=10.0, help="delays are drawn from [1, spread] s (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the delays (default 1)")
    parser.add_argument("--redis-hz", type=int, help="start the private Redis with --hz N (Redis's default is 10)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 10_000 or not 1 < args.spread <= 600:
        parser.error("--jobs must be 1..10000 and --spread more than 1 and at most 600")
    if args.redis_hz is not None and not 1 <= args.redis_hz <= 500:
        parser.error("--redis-hz must be 1..500 (Redis's range)")
    delays = [random.Random(args.seed + i).uniform(1.0, args.spread) for i in range(args.jobs)]

    import redis

    load = load_average()
    started = time.monotonic()
    with private_redis(("--hz", str(args.redis_hz)) if args.redis_hz else ()) as (server, directory):
        setup_django()
        client = redis.Redis.from_url(server.url)
        try:
            hz = client.config_get("hz")["hz"]
            queue_setup = describe_queue("email")
            results = [run_app(client, delays, directory)]
            client.flushall()
            results.append(run_plain(client, server.url, delays, directory))
        finally:
            client.close()
    elapsed = time.monotonic() - started

    info = machine()
    print(f"# delayed-job lateness: {args.jobs} jobs per side, delays uniform in [1, {args.spread:g}] s, "
          f"seed {args.seed}; one worker each, one after the other; Redis hz {hz}; {elapsed:.0f} s wall")
    print(run_header(info, load))
    print(f"# {queue_setup}")
    print("\nAll jobs (lateness = started_at - due; negative = started early):\n")
    print(table(results, "all"))
    print("\nOnly jobs not queued behind another (the worker started no other job between their due time "
          "and their start):\n")
    print(table(results, "not_queued"))
    print("\nPromotion: enqueued_at (moved to the waiting list) - due:\n")
    print(table(results, "promotion"))
    print("\nPick-up: started_at - enqueued_at (take the job, fork the work horse, start the call):\n")
    print(table(results, "pickup"))
    for result in results:
        print(f"\n{result['name']}: statuses {result['statuses']}, not run {result['not_run']}, "
              f"job run time p50 {result['run_ms_p50']:.1f} ms (started_at..ended_at), "
              f"worker exit {result['worker_exit']}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "machine": info,
                                         "load_before": load, "elapsed_s": elapsed, "results": results}, indent=2))
    return 0 if all(r["not_run"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
