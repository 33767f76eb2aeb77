"""What retention costs the worker: Redis commands per no-op job with the default (bounded) retention against
keeping every job, on a private Redis, counted (so the machine's load does not matter).

    .venv/bin/python benchmarks/retention_commands.py [--jobs 2000]

Per case, on a flushed server: 1,200 jobs run first (so the completed registry is past the default's 1,000 and
every later finish trims), then N no-op jobs added at once and drained by this app's SimpleWorker in this process,
with INFO commandstats reset before the drain (commands inside Lua scripts included).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
# A throw-away database (the worker's keeper reads the spool table), never the project's db.sqlite3.
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.gettempdir()}/queues-bench-retention.sqlite3")

from benchmarks._common import command_stats, private_redis, setup_django  # noqa: E402

CASES = (("default retention (the newest 1,000 completed, 7 days)", {}),
         ("remove_on_complete=False (every job kept)", {"remove_on_complete": False}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    jobs = parser.parse_args().jobs
    with private_redis() as (server, _directory):
        setup_django()
        import redis

        from queues import get_queue
        from queues.worker import SimpleWorker

        client = redis.Redis.from_url(server.url)
        print("| case | Redis commands per job | completed jobs kept |\n|---|---:|---:|")
        for label, options in CASES:
            client.flushall()
            queue = get_queue("bench")
            spec = {"job": "benchmarks.jobs.noop", "data": {}, "options": options}
            queue.add_bulk([spec] * 1200)
            SimpleWorker(["bench"]).work(burst=True)
            queue.add_bulk([spec] * jobs)
            client.config_resetstat()
            SimpleWorker(["bench"]).work(burst=True)
            calls = sum(command_stats(client).values())
            print(f"| {label} | {calls / jobs:.1f} | {queue.get_job_counts()['completed']:,} |")


if __name__ == "__main__":
    main()
