"""How precisely Redis ends a blocking command's timeout: ``BZPOPMIN key <t>`` on an empty key, at two ``hz``.

    .venv/bin/python benchmarks/redis_block_timeout.py [--samples 100]

Why this app's idle worker does not leave the last 100 ms before a delayed job's due time to Redis. Redis
checks blocked clients' timeouts when its event loop wakes, and with no other traffic it wakes for its
``serverCron`` timer, ``hz`` times a second (default 10): a blocking command returns up to ``1000 / hz`` ms
after its timeout. So ``RQQueue.dequeue_any`` blocks on ``BZPOPMIN`` only until ``BLOCK_TIMEOUT_SLACK``
(0.1 s) before the next due time and sleeps the rest itself. Each sample here waits a timeout between 50 and
272 ms; the script starts its own Redis server (twice: default hz, then --hz 100).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import load_average, machine, nearest_rank, private_redis, run_header  # noqa: E402


def measure(samples: int, extra_args: tuple[str, ...]) -> tuple[str, list[float]]:
    import redis

    with private_redis(extra_args) as (server, _directory):
        client = redis.Redis.from_url(server.url)
        try:
            hz = client.config_get("hz")["hz"]
            late = []
            for i in range(samples):
                timeout = 0.05 + (i % 7) * 0.037  # 50 .. 272 ms, not in step with the server's timer
                started = time.monotonic()
                client.bzpopmin(["bench:empty"], timeout=timeout)
                late.append((time.monotonic() - started - timeout) * 1000)
        finally:
            client.close()
    return hz, late


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100, help="timeouts per setting (default 100, at most 1000)")
    args = parser.parse_args(argv)
    if not 1 <= args.samples <= 1000:
        parser.error("--samples must be 1..1000")
    info = machine()
    print(f"# BZPOPMIN on an empty key: how long after its timeout it returns; {args.samples} samples per row")
    print(run_header(info, load_average()) + "\n")
    print("| Redis hz | p50 ms | p99 ms | max ms | min ms | mean ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for extra in ((), ("--hz", "100")):
        hz, late = measure(args.samples, extra)
        label = f"{hz}{'' if extra else ' (default)'}"
        print(f"| {label} | {nearest_rank(late, 50):.1f} | {nearest_rank(late, 99):.1f} | {max(late):.1f} | "
              f"{min(late):.1f} | {statistics.fmean(late):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
