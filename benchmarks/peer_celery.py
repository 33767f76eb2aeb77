"""Celery, a peer of ``benchmarks/run.py``; runs under the peers' own venv, not the project's.

    BENCH_REDIS_URL=redis://127.0.0.1:<port>/0 python -m benchmarks.peer_celery add <noop|sleep> <n> <seconds>
    BENCH_REDIS_URL=... BENCH_N=<n> celery -A benchmarks.peer_celery worker -Q benchq -P solo | -P threads -c 50

The broker is the private Redis run.py started (``BENCH_REDIS_URL``); no result backend. The worker notes the
first ``task_prerun`` and the last ``task_postrun`` in memory, and when ``BENCH_N`` tasks have run writes
``{"first", "last", "count"}`` to the key ``benchq:celery:done`` (one command at the end, not one per task).
"""

import json
import os
import sys
import threading
import time

from celery import Celery
from celery.signals import task_postrun, task_prerun

app = Celery("benchq", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))
app.conf.update(task_default_queue="benchq", task_ignore_result=True, broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)

_lock = threading.Lock()
_seen = {"first": None, "last": None, "count": 0}


@app.task(name="bench.noop")
def noop(i: int) -> None:
    """Do nothing."""


@app.task(name="bench.sleep")
def sleep(i: int, seconds: float) -> None:
    time.sleep(seconds)


@task_prerun.connect
def _started(**_kwargs: object) -> None:
    with _lock:
        if _seen["first"] is None:
            _seen["first"] = time.time()


@task_postrun.connect
def _ended(**_kwargs: object) -> None:
    with _lock:
        _seen["last"] = time.time()
        _seen["count"] += 1
        if _seen["count"] == int(os.environ.get("BENCH_N", "0")):
            with app.connection_for_write() as connection:
                connection.default_channel.client.set("benchq:celery:done", json.dumps(_seen))


def add(kind: str, n: int, seconds: float) -> None:
    with app.producer_or_acquire() as producer:
        for i in range(n):
            if kind == "sleep":
                sleep.apply_async((i, seconds), producer=producer)
            else:
                noop.apply_async((i,), producer=producer)


if __name__ == "__main__" and sys.argv[1:2] == ["add"]:
    add(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
