"""What the event stream costs: no-op jobs per second through ONE worker with events on and off, beside plain RQ,
same run, same private Redis.

    .venv/bin/python benchmarks/events_overhead.py [--jobs 1000] [--rounds 3] [--kind both|forking|non-forking]

Configurations of this app (``DJANGO_SETTINGS_MODULE`` defaults to ``tests.settings``: one worker process per
``rqworker`` on the email queue, no rate limit), each for the forking worker (``manage.py rqworker email --burst``)
and the non-forking one (``... --worker-class queues.worker.SimpleWorker``):

- events on: the settings as they are (``QUEUES_EVENTS_MAX_LENGTH`` 10,000, metrics on);
- events off: ``QUEUES_EVENTS_MAX_LENGTH = 0`` (metrics still on);
- events and metrics off: also ``QUEUES_METRICS_MINUTES = 0``;

and plain RQ's worker of the same kind (``rq worker --burst [--worker-class rq.worker.SimpleWorker]`` with the JSON
serializer, running ``benchmarks.plain_jobs.noop``). The "off" settings reach the worker processes through a
settings module written into the run's temporary directory (``from tests.settings import *`` plus the override);
the jobs are added from this process under the same settings (``override_settings``).

Every round runs each configuration once, kinds one after the other, the configurations in a rotated order from one
round to the next (so a slow spell of the machine does not always hit the same one). Each measurement, on a flushed
server: a burst run on the empty queue (start-up and shut-down alone), then N no-op jobs added at once
(``add_bulk`` with ``remove_on_complete=False``; RQ: ``enqueue_many``), CONFIG RESETSTAT, and a burst run that
drains them. Reported, per configuration, the median over rounds (and every round):

- jobs/s from the job hashes: N / (last ``ended_at`` - first ``started_at``), both written by the worker;
- jobs/s from wall time: N / (wall time of the burst run - wall time of the empty run);
- CPU per job: the worker's and its job processes' user + sys time (``RUSAGE_CHILDREN``, net of the empty run),
  and the Redis server's (INFO cpu), during the drain. On a shared machine the CPU time is the steadier measure:
  jobs/s moves with whatever else runs, CPU time spent per job hardly does;
- Redis commands per job during the drain (INFO commandstats, commands inside Lua scripts included), and while
  adding (``add_bulk``, so the ``added``/``waiting`` events' share); the server time of XADD and of the scripts
  (EVAL + EVALSHA, which include the XADDs they run) per job during the drain;
- events on against events off: the slowdown of the medians, of each round, of the best rounds, and the extra CPU
  time per job.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
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
CONFIGS = {  # name: (settings overrides, or None for plain RQ)
    "events on": {},
    "events off": {"QUEUES_EVENTS_MAX_LENGTH": 0},
    "events + metrics off": {"QUEUES_EVENTS_MAX_LENGTH": 0, "QUEUES_METRICS_MINUTES": 0},
    "plain RQ": None,
}


@dataclass
class Run:
    round: int
    kind: str  # "forking" or "non-forking"
    config: str
    empty_wall: float = 0.0
    empty_cpu: float = 0.0  # CPU seconds (user + sys) of the worker and its job processes
    wall: float = 0.0
    cpu: float = 0.0
    redis_cpu: float = 0.0  # CPU seconds of the Redis server during the drain
    span: float = 0.0  # first started_at .. last ended_at
    add_calls: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    usec: dict[str, int] = field(default_factory=dict)  # server time per command (INFO commandstats), drain run
    finished: int = 0
    stream_length: int = 0


def settings_module(directory: Path, name: str, overrides: dict[str, Any]) -> str:
    """Write ``<directory>/<name>.py``: the default settings plus ``overrides``; its module name."""
    lines = ["from tests.settings import *  # noqa: F403", *(f"{k} = {v!r}" for k, v in overrides.items())]
    (directory / f"{name}.py").write_text("\n".join(lines) + "\n")
    return name


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def burst(args: list[str], log: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run a burst worker to its end (it must exit 0); its wall time, process start to exit, and the CPU time
    of the worker and every job process it waited for (they are the only children running meanwhile)."""
    cpu = children_cpu()
    began = time.monotonic()
    proc = start(args, log, env)
    try:
        code = proc.wait(RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError(f"{args} ran over {RUN_TIMEOUT} s:\n{log.read_text(errors='replace')[-3000:]}") from None
    wall = time.monotonic() - began
    if code != 0:
        raise RuntimeError(f"{args} exited {code}:\n{log.read_text(errors='replace')[-3000:]}")
    return wall, children_cpu() - cpu


def measure(run: Run, args: list[str], env: dict[str, str], add: Any, client: Any, directory: Path,
            events_key: str) -> None:
    label = f"{run.round}-{run.kind}-{run.config.replace(' ', '_').replace('+', '')}"
    client.flushall()
    run.empty_wall, run.empty_cpu = burst(args, directory / f"{label}-empty.log", env)

    client.flushall()
    client.config_resetstat()
    ids = add()
    run.add_calls = command_stats(client)
    client.config_resetstat()
    server_cpu = redis_cpu(client)
    run.wall, run.cpu = burst(args, directory / f"{label}.log", env)
    run.redis_cpu = redis_cpu(client) - server_cpu
    run.calls = command_stats(client)
    run.usec = {key.removeprefix("cmdstat_"): int(value["usec"]) for key, value in client.info("commandstats").items()}
    run.stream_length = client.xlen(events_key) if client.type(events_key) == b"stream" else 0

    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at", "status")
    hashes = pipe.execute()
    run.finished = sum(1 for _s, _e, status in hashes if status == b"finished")
    starts = [t for s, _e, _st in hashes if (t := parse_time(s)) is not None]
    ends = [t for _s, e, _st in hashes if (t := parse_time(e)) is not None]
    run.span = max(ends) - min(starts) if starts and ends else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="no-op jobs per measurement (default: %(default)r)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every configuration (default: %(default)r)")
    parser.add_argument("--kind", choices=("both", "forking", "non-forking"), default="both",
                        help="which worker kind to measure (default: %(default)r)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    kinds = ("forking", "non-forking") if args.kind == "both" else (args.kind,)
    if not 10 <= args.jobs <= 20_000:
        parser.error("--jobs must be 10..20000")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1..20")

    import redis
    import rq
    from django.test import override_settings
    from rq.serializers import JSONSerializer

    load = load_average()
    began = time.monotonic()
    runs: list[Run] = []
    with private_redis() as (server, directory):
        setup_django()
        from queues import get_queue
        from queues.scripts import QueueKeys
        from tests.testapp import jobs

        client = redis.Redis.from_url(server.url)
        plain = rq.Queue("plain", connection=redis.Redis.from_url(server.url), serializer=JSONSerializer)
        modules = directory / "settings"
        modules.mkdir()
        envs = {name: child_env(PYTHONPATH=str(modules),
                                DJANGO_SETTINGS_MODULE=settings_module(modules, f"bench_{i}", overrides))
                for i, (name, overrides) in enumerate(CONFIGS.items()) if overrides is not None}
        envs["plain RQ"] = child_env()

        def add_app(overrides: dict[str, Any]) -> Any:
            def add() -> list[str]:
                items = [{"job": jobs.add, "data": {"a": i, "b": 0}, "options": {"remove_on_complete": False}}
                         for i in range(args.jobs)]
                with override_settings(**overrides):
                    return [handle.id for handle in get_queue("email").add_bulk(items)]
            return add

        def add_plain() -> list[str]:
            datas = [rq.Queue.prepare_data("benchmarks.plain_jobs.noop", kwargs={"a": i, "b": 0})
                     for i in range(args.jobs)]
            return [job.id for job in plain.enqueue_many(datas)]

        app_cmd = [sys.executable, "manage.py", "rqworker", "email", "--burst"]
        rq_cmd = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--serializer", JSON, "--url", server.url]
        commands = {
            ("forking", True): app_cmd,
            ("forking", False): [*rq_cmd, "plain"],
            ("non-forking", True): [*app_cmd, "--worker-class", "queues.worker.SimpleWorker"],
            ("non-forking", False): [*rq_cmd, "--worker-class", "rq.worker.SimpleWorker", "plain"],
        }
        names = list(CONFIGS)
        try:
            for number in range(1, args.rounds + 1):
                order = names[number - 1:] + names[:number - 1]  # rotate: each configuration leads once in a while
                for kind in kinds:
                    for config in order:
                        overrides = CONFIGS[config]
                        run = Run(number, kind, config)
                        is_app = overrides is not None
                        measure(run, commands[kind, is_app], envs[config],
                                add_app(overrides) if is_app else add_plain, client, directory,
                                QueueKeys.of("email").events)
                        runs.append(run)
                        print(f"round {number} {kind:11} {config:21} {args.jobs / run.span:7.1f} jobs/s "
                              f"({run.finished} finished)", file=sys.stderr, flush=True)
        finally:
            client.close()
            plain.connection.close()
    elapsed = time.monotonic() - began

    n = args.jobs
    info = machine()
    print(f"# one worker at a time draining {n} no-op jobs added at once (--burst); {args.rounds} rounds, "
          f"configurations rotated each round; {elapsed:.0f} s wall")
    print(run_header(info, load) + "; JSON serializer on both sides\n")

    def rate(run: Run) -> float:
        return n / run.span

    def wall_rate(run: Run) -> float:
        return n / (run.wall - run.empty_wall)

    def worker_cpu(run: Run) -> float:  # ms per job, net of the empty run (start-up, shut-down)
        return (run.cpu - run.empty_cpu) / n * 1000

    def server_cpu(run: Run) -> float:  # ms per job
        return run.redis_cpu / n * 1000

    def pick(kind: str, config: str) -> list[Run]:
        return [r for r in runs if r.kind == kind and r.config == config]

    def median(values: Any) -> float:
        return statistics.median(list(values))

    print("| kind | configuration | jobs/s, first start to last end: median (each round) | best | "
          "jobs/s, wall minus empty run: median | worker CPU ms/job | Redis CPU ms/job | XADD µs/job | "
          "scripts µs/job | Redis commands / job, drain | while adding | stream length | finished |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in kinds:
        for config in names:
            chosen = pick(kind, config)
            rates = [rate(r) for r in chosen]
            drain = statistics.mean(sum(r.calls.values()) for r in chosen) / n
            adding = statistics.mean(sum(r.add_calls.values()) for r in chosen) / n
            print(f"| {kind} | {config} | {median(rates):.1f} ({', '.join(f'{x:.1f}' for x in rates)}) | "
                  f"{max(rates):.1f} | {median(wall_rate(r) for r in chosen):.1f} | "
                  f"{median(worker_cpu(r) for r in chosen):.2f} | {median(server_cpu(r) for r in chosen):.3f} | "
                  f"{median(r.usec.get('xadd', 0) / n for r in chosen):.1f} | "
                  f"{median((r.usec.get('eval', 0) + r.usec.get('evalsha', 0)) / n for r in chosen):.1f} | "
                  f"{drain:.2f} | {adding:.2f} | {chosen[-1].stream_length} | {min(r.finished for r in chosen)} |")

    print("\nEvents on against events off: slowdown = 1 - (jobs/s on) / (jobs/s off), negative when on was faster; "
          "CPU = worker + Redis CPU per job, on / off - 1:\n")
    print("| kind | against | slowdown of the medians | each round | median of the rounds | slowdown of the best | "
          "extra CPU per job (medians) |")
    print("|---|---|---:|---|---:|---:|---:|")
    for kind in kinds:
        on = pick(kind, "events on")
        for other in ("events off", "events + metrics off"):
            off = pick(kind, other)
            per_round = [1 - rate(a) / rate(b) for a, b in zip(on, off, strict=True)]
            medians = 1 - median(rate(r) for r in on) / median(rate(r) for r in off)
            best = 1 - max(rate(r) for r in on) / max(rate(r) for r in off)
            cpu_on = median(worker_cpu(r) + server_cpu(r) for r in on)
            cpu_off = median(worker_cpu(r) + server_cpu(r) for r in off)
            print(f"| {kind} | {other} | {medians * 100:+.1f} % | {', '.join(f'{x * 100:+.1f} %' for x in per_round)} "
                  f"| {median(per_round) * 100:+.1f} % | {best * 100:+.1f} % | {(cpu_on / cpu_off - 1) * 100:+.1f} % "
                  f"({cpu_on:.2f} against {cpu_off:.2f} ms) |")
    print(f"\nLoad average after the run: {load_average()}")

    print("\nRedis commands per job, by command (drain run, mean over rounds / N):\n")
    for kind in kinds:
        for config in names:
            chosen = pick(kind, config)
            totals: dict[str, float] = {}
            for r in chosen:
                for name, calls in r.calls.items():
                    totals[name] = totals.get(name, 0) + calls / len(chosen) / n
            parts = ", ".join(f"{name} {per:.2f}" for name, per in sorted(totals.items(), key=lambda kv: -kv[1])
                              if per >= 0.005)
            print(f"- {kind}, {config}: {parts}")
    if args.json:
        args.json.write_text(json.dumps({"args": {"jobs": n, "rounds": args.rounds, "kind": args.kind}, "machine": info,
                                         "load_before": load, "elapsed_s": elapsed,
                                         "runs": [asdict(r) for r in runs]}, indent=2))
    return 0 if all(r.finished == n for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
