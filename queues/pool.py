"""Concurrency: ``rqworker`` as a supervisor of one worker process per unit of each queue's ``concurrency``.

``manage.py rqworker email notifications`` with ``email`` at concurrency 5 and ``notifications`` at 2
runs 7 worker processes: 5 taking only ``email`` jobs, 2 only ``notifications`` jobs, so each queue runs at
most its ``concurrency`` jobs at once per command (several commands, on several hosts, add up, as BullMQ
workers do). The supervisor restarts a worker that dies, passes SIGTERM / SIGINT on (each worker then
stops as usual: its running job may finish within ``QUEUES_SHUTDOWN_GRACE``), and exits 0 once all have
stopped. Database connections are closed before forking.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from django.db import connections

logger = logging.getLogger("queues.worker")
RESTART_DELAY = 1.0  # seconds before a worker that died is started again


def _start(worker_class: type, queue: str, *, burst: bool, max_jobs: int | None, logging_level: Any) -> int:
    connections.close_all()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        worker = worker_class([queue])
        worker.pooled = True
        worker.work(burst=burst, max_jobs=max_jobs, logging_level=logging_level)
    except BaseException:  # noqa: BLE001 - a child must never return into the supervisor's code
        logger.exception("worker for queue %s crashed", queue)
        code = 1
    finally:
        os._exit(code)


def supervise(worker_class: type, definitions: list[Any], *, burst: bool = False, max_jobs: int | None = None,
              logging_level: Any = None) -> bool:
    """Run ``concurrency`` workers per queue until stopped (or, with ``burst``, until all are done)."""
    wanted = [definition.name for definition in definitions for _ in range(definition.concurrency)]
    children: dict[int, str] = {}
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        first = not stopping
        stopping = True
        logger.info("supervisor: %s, stopping %d workers%s", signal.Signals(signum).name, len(children),
                    "" if first else " (again: their running jobs are stopped now)")
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for queue in wanted:
        children[_start(worker_class, queue, burst=burst, max_jobs=max_jobs, logging_level=logging_level)] = queue
    logger.info("supervisor pid %d: %d workers (%s)", os.getpid(), len(children),
                ", ".join(f"{name}×{wanted.count(name)}" for name in dict.fromkeys(wanted)))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        queue = children.pop(pid, None)
        if queue is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping or (burst and code == 0):
            continue
        logger.warning("worker pid %d for queue %s exited (%s); starting another in %.0f s", pid, queue, code,
                       RESTART_DELAY)
        time.sleep(RESTART_DELAY)
        if not stopping:
            children[_start(worker_class, queue, burst=burst, max_jobs=max_jobs, logging_level=logging_level)] = queue
    return True
