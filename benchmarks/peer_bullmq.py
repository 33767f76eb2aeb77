"""BullMQ for Python, a peer of ``benchmarks/run.py``; runs under the peers' own venv, not the project's.

    python benchmarks/peer_bullmq.py add  <redis url> <queue> <noop|sleep> <n> <seconds>
    python benchmarks/peer_bullmq.py work <redis url> <queue> <noop|sleep> <n> <seconds> <concurrency>

``work`` runs one Worker until n jobs have completed or failed (run.py reads processedOn / finishedOn from the job
hashes). The Redis URL is the private server run.py started; nothing else is contacted.
"""

import asyncio
import json
import sys
import time


async def add(url: str, name: str, kind: str, n: int) -> None:
    from bullmq import Queue

    queue = Queue(name, {"connection": url})
    for first in range(0, n, 1000):
        await queue.addBulk([{"name": kind, "data": {"i": i}} for i in range(first, min(first + 1000, n))])
    await queue.close()


async def work(url: str, name: str, kind: str, n: int, seconds: float, concurrency: int) -> int:
    import redis.asyncio as aredis
    from bullmq import Worker

    async def process(job, token):  # noqa: ANN001, ANN202, ARG001
        if kind == "sleep":
            await asyncio.sleep(seconds)

    began = time.monotonic()
    worker = Worker(name, process, {"connection": url, "concurrency": concurrency})
    client = aredis.Redis.from_url(url)
    deadline = began + 60 + n * 0.1
    done = 0
    while time.monotonic() < deadline:
        done = await client.zcard(f"bull:{name}:completed") + await client.zcard(f"bull:{name}:failed")
        if done >= n:
            break
        await asyncio.sleep(0.05)
    await worker.close()
    await client.aclose()
    print(json.dumps({"done": done, "wall_s": time.monotonic() - began}))  # noqa: T201
    return 0 if done >= n else 1


def main() -> int:
    command, url, name, kind, n, seconds = sys.argv[1:7]
    if command == "add":
        asyncio.run(add(url, name, kind, int(n)))
        return 0
    return asyncio.run(work(url, name, kind, int(n), float(seconds), int(sys.argv[7])))


if __name__ == "__main__":
    sys.exit(main())
