"""How the admin dashboard's response time depends on the number of jobs: 10, 100,000 and 1,000,000 waiting.

    .venv/bin/python benchmarks/dashboard.py [--sizes 10,100000,1000000] [--requests 30]

(``DJANGO_SETTINGS_MODULE`` defaults to ``tests.settings``: its ten queues are on the dashboard.)

One process, one private Redis server on a free loopback port (started here, stopped at the end), a throw-away
SQLite database in a temporary directory (for the admin user and its session), no worker. Each size gets its own
Redis database on that server (db 0 for the first size, db 1 for the next, ...), whose ``email`` queue is filled
with that many waiting jobs: a copy of a real job's hash (written once by ``get_queue("email").add``) under a new
id, and the id pushed on the queue's list, as the app's ADD script does, by a Lua loop of 20,000 jobs per call.

Django's test client, logged in as a superuser, then requests each page in rounds: in every round, for each size
in turn, ``QUEUES_REDIS`` points at that size's database (``override_settings``; the first request after the
switch opens the connection and is not counted) and the page is requested ``--block`` times. The sizes are thus
measured interleaved, under the same load: this machine is shared, and measuring one size after the other put
drift of ±50 % between them. The pages:

- the dashboard (``/admin/queues/queue/``): every queue's counts, workers, chart and health;
- its JSON endpoint (``_stats/``), which the page fetches every 5 s;
- for information, the email queue's page listing waiting jobs: the first page, and a page in the middle.

Reported per page and size: the median, the 90th percentile (nearest rank) and the fastest response time, the
ratio of the median to the median at the smallest size, and the Redis commands one request sends (``INFO
commandstats`` after ``CONFIG RESETSTAT``, over ``--block`` requests, so commands inside Lua count too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    command_stats,
    load_average,
    machine,
    nearest_rank,
    private_redis,
    run_header,
    setup_django,
)

WARM_UP = 3
FILL_BATCH = 20_000
QUEUE = "email"

# KEYS: the queue's list, rq:queues. ARGV: id prefix, first number, count, queue key, then the hash's field/value
# pairs. Writes `count` copies of the job hash under ids <prefix><n> and pushes them on the list.
FILL = """
local prefix, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
for n = first, first + count - 1 do
  local id = prefix .. n
  redis.call('HSET', 'rq:job:' .. id, unpack(fields))
  redis.call('RPUSH', KEYS[1], id)
end
return count
"""


def fill(client: Any, template: dict[bytes, bytes], have: int, want: int) -> float:
    """Add waiting copies of ``template`` until the queue holds ``want``; return the seconds it took."""
    from queues.scripts import QUEUES_SET, QueueKeys

    keys = QueueKeys.of(QUEUE)
    pairs: list[bytes] = []
    for name, value in template.items():
        if name in (b"id",):
            continue
        pairs += [name, value]
    script = client.register_script(FILL)
    began = time.perf_counter()
    n = have
    while n < want:
        count = min(FILL_BATCH, want - n)
        script(keys=[keys.wait, QUEUES_SET], args=["bench-", n, count, f"rq:queue:{QUEUE}", *pairs])
        n += count
    return time.perf_counter() - began


def timed(client: Any, url: str) -> float:
    began = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - began) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100000,1000000",
                        help="waiting jobs, one Redis database per size (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds over the sizes (default 10)")
    parser.add_argument("--block", type=int, default=5, help="requests per page, size and round (default 5)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not 1 <= len(sizes) <= 16 or min(sizes) < 1 or max(sizes) > 5_000_000:
        parser.error("--sizes: 1 to 16 sizes, each from 1 to 5000000")
    if not 1 <= args.rounds <= 100 or not 1 <= args.block <= 100:
        parser.error("--rounds and --block: 1..100")

    import redis

    load = load_average()
    began = time.monotonic()
    pages = {
        "dashboard": lambda size: "/admin/queues/queue/",
        "JSON endpoint": lambda size: "/admin/queues/queue/_stats/",
        "queue page, first 20 waiting": lambda size: f"/admin/queues/queue/{QUEUE}/?state=waiting",
        "queue page, middle 20 waiting": lambda size: (f"/admin/queues/queue/{QUEUE}/?state=waiting"
                                                       f"&page={max(1, size // 40)}"),
    }
    times: dict[tuple[str, int], list[float]] = {(name, size): [] for name in pages for size in sizes}
    commands: dict[tuple[str, int], float] = {}
    filled: dict[int, float] = {}
    saved_database_url = os.environ.get("DATABASE_URL")
    with private_redis() as (server, _directory), tempfile.TemporaryDirectory(prefix="queues-bench-db-") as db_dir:
        os.environ["DATABASE_URL"] = f"sqlite:///{db_dir}/bench.sqlite3"
        setup_django()
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.test import Client, override_settings
        from django.test.utils import setup_test_environment

        from queues import get_queue
        from tests.testapp.jobs import add

        setup_test_environment()  # the test client's ALLOWED_HOSTS ("testserver")
        call_command("migrate", verbosity=0)
        user = User.objects.create_superuser("bench", password="bench-pw")
        client = Client()
        client.force_login(user)
        base = server.url.rsplit("/", 1)[0]
        urls = {size: f"{base}/{db}" for db, size in enumerate(sizes)}
        clients = {size: redis.Redis.from_url(url) for size, url in urls.items()}
        try:
            template_job = get_queue(QUEUE).add(add, {"a": 1, "b": 2})  # in db 0 (REDIS_URL)
            template = clients[sizes[0]].hgetall(f"rq:job:{template_job.id}")
            clients[sizes[0]].flushdb()
            for size in sizes:
                filled[size] = fill(clients[size], template, 0, size)
                assert clients[size].llen(f"rq:queue:{QUEUE}") == size
                print(f"  {size:>9,} waiting jobs written in {filled[size]:.1f} s", file=sys.stderr, flush=True)
            for name, url in pages.items():
                for size in sizes:
                    with override_settings(QUEUES_REDIS={"URL": urls[size]}):
                        for _ in range(WARM_UP):
                            timed(client, url(size))
                        clients[size].config_resetstat()
                        for _ in range(args.block):
                            timed(client, url(size))
                        commands[name, size] = sum(command_stats(clients[size]).values()) / args.block
            for _ in range(args.rounds):
                for name, url in pages.items():
                    for size in sizes:
                        with override_settings(QUEUES_REDIS={"URL": urls[size]}):
                            timed(client, url(size))  # opens the connection to this size's database
                            times[name, size] += [timed(client, url(size)) for _ in range(args.block)]
            memory = clients[sizes[0]].info("memory")["used_memory"]
        finally:
            for each in clients.values():
                each.close()
            if saved_database_url is None:
                os.environ.pop("DATABASE_URL", None)
            else:
                os.environ["DATABASE_URL"] = saved_database_url
    elapsed = time.monotonic() - began

    info = machine()
    n = args.rounds * args.block
    print(f"# admin dashboard response time by number of waiting jobs: {n} requests per page and size, in "
          f"{args.rounds} interleaved rounds of {args.block}, Django test client, no worker; {elapsed:.0f} s wall")
    print(run_header(info, load) + "\n")
    print(f"| page | waiting jobs | median ms | p90 ms | fastest ms | median ÷ median at {sizes[0]:,} | "
          "Redis commands / request |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = []
    for name in pages:
        baseline = statistics.median(times[name, sizes[0]])
        for size in sizes:
            values = times[name, size]
            row = {"page": name, "size": size, "median_ms": statistics.median(values),
                   "p90_ms": nearest_rank(values, 90), "min_ms": min(values), "commands": commands[name, size],
                   "times_ms": values}
            results.append(row)
            print(f"| {name} | {size:,} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | {row['min_ms']:.1f} | "
                  f"{row['median_ms'] / baseline:.2f} | {row['commands']:.1f} |")
    print()
    written = ", ".join(f"{size:,} in {seconds:.1f} s" for size, seconds in filled.items())
    print(f"- waiting jobs written: {written}; Redis used_memory at the end {memory / 2**20:,.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "load": load, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
