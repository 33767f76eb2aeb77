"""How fast jobs go into Redis: this app's ``add`` / ``add_bulk`` against plain RQ's ``enqueue`` / ``enqueue_many``.

    .venv/bin/python benchmarks/enqueue_throughput.py [--jobs 5000] [--rounds 3]

(``DJANGO_SETTINGS_MODULE`` defaults to ``tests.settings``, whose test app registers the job added here.)

One process, one private Redis server on a free loopback port (started here, stopped at the end), no worker:
only adding is measured. Each case adds N jobs with data ``{"a": i, "b": 2}`` to an empty server (FLUSHALL
before each case, after a warm-up of 100 jobs that is not counted):

- this app: ``get_queue("email").add(tests.testapp.jobs.add, data)``; ``add_bulk`` in batches of 100 and
  1000; and, for information, ``add(..., priority=5)`` and ``add(..., delay=60)``;
- plain RQ: ``rq.Queue("plain", serializer=JSONSerializer).enqueue("tests.testapp.jobs.add", **data)``;
  ``enqueue_many([Queue.prepare_data(...), ...])`` in the same batch sizes; and ``enqueue_in(60 s)``.

Plain RQ enqueues the same dotted path as this app (nothing runs the jobs here, so RQ never imports it):
the job's serialized ``data`` field is then the same size on both sides, and the memory columns compare the
fields each side writes, not the length of two function names. That matters more than it seems: a hash
whose every value is at most 64 bytes (Redis's ``hash-max-listpack-value``) is stored compactly as a
listpack, and one longer value turns it into a hash table about twice the size. ``--plain-func
benchmarks.plain_jobs.noop`` shows it: that longer path pushes RQ's ``data`` field over 64 bytes.

Reported per case: jobs/s (median of the rounds, and the range), Redis commands per job (INFO commandstats
after CONFIG RESETSTAT, so commands run inside a Lua script count too), client round trips per job (writes
to the socket: a pipeline or a script call is one), ``MEMORY USAGE`` of one job hash, and the growth of
``used_memory`` per job (the hash plus its share of the queue's list or sorted set).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_stats, load_average, machine, private_redis, run_header, setup_django  # noqa: E402

WARM_UP = 100
PLAIN_FUNC = "tests.testapp.jobs.add"  # the same path as this app's job: see the module docstring
TIME_LIMIT = 100.0  # seconds for all rounds together; a round that would start past it is skipped


@dataclass
class Case:
    name: str
    side: str  # "app" or "rq"
    run: Callable[[int, int], None]  # (first index, count) -> adds `count` jobs
    check: Callable[[], int]  # how many jobs the case left where they belong (waiting, prioritized, delayed)
    rates: list[float] = field(default_factory=list)
    commands: dict[str, float] = field(default_factory=dict)
    round_trips: float = 0.0
    hash_bytes: int | None = None
    encoding: str = ""
    memory_per_job: float = 0.0
    found: int = 0


class RoundTrips:
    """Counts writes to Redis sockets (one per command, one per pipeline or script call) while active."""

    def __init__(self) -> None:
        self.count = 0
        self.active = False

    @contextlib.contextmanager
    def install(self) -> Iterator[None]:
        from redis.connection import AbstractConnection

        original = AbstractConnection.send_packed_command
        counter = self

        def counted(conn: Any, command: Any, check_health: bool = True) -> Any:  # noqa: FBT001,FBT002
            if counter.active:
                counter.count += 1
            return original(conn, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        try:
            yield
        finally:
            AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def build_cases(client: Any, url: str, plain_func: str) -> list[Case]:
    import redis
    import rq
    from rq.serializers import JSONSerializer

    from queues import get_queue
    from tests.testapp import jobs

    app = get_queue("email")
    plain = rq.Queue("plain", connection=redis.Redis.from_url(url), serializer=JSONSerializer)

    def app_add(**options: Any) -> Callable[[int, int], None]:
        def run(first: int, count: int) -> None:
            for i in range(first, first + count):
                app.add(jobs.add, {"a": i, "b": 2}, **options)
        return run

    def app_bulk(size: int) -> Callable[[int, int], None]:
        def run(first: int, count: int) -> None:
            for start in range(first, first + count, size):
                app.add_bulk([{"job": jobs.add, "data": {"a": i, "b": 2}}
                              for i in range(start, min(start + size, first + count))])
        return run

    def rq_enqueue(first: int, count: int) -> None:
        for i in range(first, first + count):
            plain.enqueue(plain_func, a=i, b=2)

    def rq_enqueue_in(first: int, count: int) -> None:
        for i in range(first, first + count):
            plain.enqueue_in(timedelta(seconds=60), plain_func, a=i, b=2)

    def rq_many(size: int) -> Callable[[int, int], None]:
        def run(first: int, count: int) -> None:
            for start in range(first, first + count, size):
                plain.enqueue_many([rq.Queue.prepare_data(plain_func, kwargs={"a": i, "b": 2})
                                    for i in range(start, min(start + size, first + count))])
        return run

    def llen(key: str) -> Callable[[], int]:
        return lambda: client.llen(key)

    def zcard(key: str) -> Callable[[], int]:
        return lambda: client.zcard(key)

    return [
        Case("add", "app", app_add(), llen("rq:queue:email")),
        Case("enqueue", "rq", rq_enqueue, llen("rq:queue:plain")),
        Case("add_bulk, batches of 100", "app", app_bulk(100), llen("rq:queue:email")),
        Case("enqueue_many, batches of 100", "rq", rq_many(100), llen("rq:queue:plain")),
        Case("add_bulk, batches of 1000", "app", app_bulk(1000), llen("rq:queue:email")),
        Case("enqueue_many, batches of 1000", "rq", rq_many(1000), llen("rq:queue:plain")),
        Case("add priority=5", "app", app_add(priority=5), zcard("rq:prioritized:email")),
        Case("add delay=60", "app", app_add(delay=60), zcard("rq:scheduled:email")),
        Case("enqueue_in(60 s)", "rq", rq_enqueue_in, zcard("rq:scheduled:plain")),
    ]


def first_job_key(client: Any) -> str | None:
    for key in client.scan_iter(match="rq:job:*", count=1000):
        return key.decode()
    return None


def measure(case: Case, client: Any, jobs: int, trips: RoundTrips, *, detail: bool) -> None:
    client.flushall()
    case.run(0, WARM_UP)  # connections open, scripts loaded, code paths warm
    client.flushall()
    memory_before = client.info("memory")["used_memory"]
    client.config_resetstat()
    trips.count, trips.active = 0, True
    started = time.perf_counter()
    case.run(WARM_UP, jobs)
    elapsed = time.perf_counter() - started
    trips.active = False
    case.rates.append(jobs / elapsed)
    if detail:
        calls = command_stats(client)
        case.commands = {name: n / jobs for name, n in sorted(calls.items(), key=lambda kv: -kv[1])}
        case.round_trips = trips.count / jobs
        case.memory_per_job = (client.info("memory")["used_memory"] - memory_before) / jobs
        key = first_job_key(client)
        case.hash_bytes = client.memory_usage(key, samples=0) if key else None
        case.encoding = client.object("encoding", key).decode() if key else ""
        case.found = case.check()


def prep_costs(jobs: int) -> list[tuple[str, float]]:
    """Microseconds per job of the client-side work alone (no Redis): what each add does before it writes."""
    import rq
    from rq.serializers import JSONSerializer

    from queues import get_queue
    from queues.conf import get_config
    from queues.payload import check_payload
    from tests.testapp import jobs as test_jobs

    app = get_queue("email")
    plain = rq.Queue("plain", connection=app.connection, serializer=JSONSerializer)
    limit = get_config().max_payload_bytes
    n = min(jobs, 5000)

    def timed(fn: Callable[[int], Any]) -> float:
        for i in range(100):
            fn(i)
        started = time.perf_counter()
        for i in range(n):
            fn(i)
        return (time.perf_counter() - started) / n * 1e6

    return [
        ("app: payload guard (check_payload)", timed(lambda i: check_payload({"a": i, "b": 2}, limit))),
        ("app: everything before the script (resolve options, guard, build job, hash fields)",
         timed(lambda i: app._prepare({"job": test_jobs.add, "data": {"a": i, "b": 2}}, 0))),
        ("rq: create_job + to_dict (what enqueue builds before its pipeline)",
         timed(lambda i: plain.create_job(PLAIN_FUNC, kwargs={"a": i, "b": 2}).to_dict())),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per case and round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all cases (default 3)")
    parser.add_argument("--plain-func", default=PLAIN_FUNC,
                        help=f"the dotted path plain RQ enqueues (default {PLAIN_FUNC}, as this app)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not 1000 <= args.jobs <= 100_000 or not 1 <= args.rounds <= 10:
        parser.error("--jobs must be 1000..100000 and --rounds 1..10")

    import redis

    load = load_average()
    began = time.monotonic()
    with private_redis() as (server, _directory):
        setup_django()
        client = redis.Redis.from_url(server.url)
        trips = RoundTrips()
        try:
            with trips.install():
                cases = build_cases(client, server.url, args.plain_func)
                rounds = 0
                for round_number in range(args.rounds):
                    if round_number and time.monotonic() - began > TIME_LIMIT:
                        break
                    for case in cases:
                        measure(case, client, args.jobs, trips, detail=round_number == 0)
                    rounds += 1
            client.flushall()
            prep = prep_costs(args.jobs)
        finally:
            client.close()
    elapsed = time.monotonic() - began

    info = machine()
    print(f"# enqueue throughput: {args.jobs} jobs per case, {rounds} round(s), one process, no worker; "
          f"plain RQ enqueues {args.plain_func}; {elapsed:.0f} s wall")
    print(run_header(info, load) + "\n")
    print("| case | jobs/s (median) | range over rounds | Redis commands / job | round trips / job | "
          "job hash bytes (encoding) | used_memory / job | jobs in place |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        side = "this app" if case.side == "app" else "plain RQ"
        print(f"| {side}: {case.name} | {statistics.median(case.rates):,.0f} | "
              f"{min(case.rates):,.0f}–{max(case.rates):,.0f} | {sum(case.commands.values()):.2f} | "
              f"{case.round_trips:.3f} | {case.hash_bytes} ({case.encoding}) | {case.memory_per_job:.0f} | "
              f"{case.found} |")
    print("\nRedis commands per job, by command (first round):\n")
    for case in cases:
        side = "this app" if case.side == "app" else "plain RQ"
        parts = ", ".join(f"{name} {n:.2f}" for name, n in case.commands.items() if n >= 0.005)
        print(f"- {side}: {case.name}: {parts}")
    print("\nClient-side work per job, no Redis (µs):\n")
    for name, micros in prep:
        print(f"- {name}: {micros:.1f}")
    if args.json:
        args.json.write_text(json.dumps({
            "args": {"jobs": args.jobs, "rounds": rounds, "plain_func": args.plain_func}, "machine": info, "load": load,
            "elapsed_s": elapsed,
            "cases": [{"name": c.name, "side": c.side, "rates": c.rates, "commands": c.commands,
                       "round_trips": c.round_trips, "hash_bytes": c.hash_bytes, "encoding": c.encoding,
                       "memory_per_job": c.memory_per_job, "found": c.found} for c in cases],
            "prep_us": prep}, indent=2))
    return 0 if all(c.found == args.jobs for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
