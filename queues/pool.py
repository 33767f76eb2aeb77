"""Concurrency: ``rqworker`` as a supervisor of the worker processes each queue's ``mode`` and ``concurrency`` ask for.

``manage.py rqworker email notifications`` with ``email`` at concurrency 5 and ``notifications`` at 2 (both in
``"processes"`` mode) runs 7 worker processes: 5 taking only ``email`` jobs, 2 only ``notifications`` jobs, so each
queue runs at most its ``concurrency`` jobs at once per command (several commands, on several hosts, add up, as
BullMQ workers do). A ``"threads"`` queue gets one process running ``concurrency`` threads; a ``"fork"`` queue
``concurrency`` processes that fork per job. The supervisor restarts a worker that dies (its job is recovered as
stalled), replaces at once one that recycles itself (``max_jobs_per_process``, ``max_memory_per_process``), passes
SIGTERM / SIGINT on (each worker then stops as usual: its running job may finish within
``QUEUES_SHUTDOWN_GRACE``), and exits 0 once all have stopped. Database connections are closed before forking.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from typing import Any

from django.db import connections

logger = logging.getLogger("queues.worker")
RESTART_DELAY = 1.0  # seconds before a worker that died is started again, doubling while it keeps dying ...
RESTART_DELAY_MAX = 60.0  # ... up to this
STABLE_AFTER = 60.0  # a worker that lived this long starts its slot's count of deaths again


def restart_delay(deaths: int) -> float:
    """Seconds to wait before starting a worker whose slot saw ``deaths`` deaths in a row (1 for the first): a
    worker that crashes at start does not take the host's CPU in a loop."""
    return min(RESTART_DELAY * 2 ** (deaths - 1), RESTART_DELAY_MAX)
PR_SET_PDEATHSIG = 1
RECYCLE_EXIT = 75  # a worker that exits with this code recycled itself: replaced at once (queues.worker)
SIGNAL_DEBOUNCE = 0.5  # seconds within which a second stop signal is the same request, not "stop now"


def _start(worker_class: type, queue: str, *, burst: bool, max_jobs: int | None, logging_level: Any,
           name: str | None = None) -> int:
    connections.close_all()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if sys.platform.startswith("linux"):  # a worker dies with its supervisor: a restart never doubles them
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)
        worker = worker_class([queue], name=name)
        worker.pooled = True
        worker.work(burst=burst, max_jobs=max_jobs, logging_level=logging_level)
    except SystemExit as e:  # a worker recycling itself
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must never return into the supervisor's code
        logger.exception("worker for queue %s crashed", queue)
        code = 1
    finally:
        os._exit(code)


def supervise(worker_class: type, definitions: list[Any], *, burst: bool = False, max_jobs: int | None = None,
              logging_level: Any = None, name: str | None = None) -> bool:
    """Run the worker processes each queue asks for until stopped (or, with ``burst``, until all are done).

    ``name`` (``rqworker --name``) names the only worker, or is the prefix of ``<name>-<n>`` for several.
    """
    wanted = [definition.name for definition in definitions
              for _ in range(1 if definition.mode == "threads" else definition.concurrency)]
    names: list[str | None] = ([name if len(wanted) == 1 else f"{name}-{n}" for n in range(len(wanted))] if name
                               else [None] * len(wanted))
    children: dict[int, int] = {}  # pid -> slot (an index of `wanted`)
    restarts = [0] * len(wanted)
    deaths = [0] * len(wanted)  # in a row, per slot
    started_at = [0.0] * len(wanted)
    stopping = False
    stopped_at = 0.0

    def start(slot: int) -> None:
        given = names[slot]
        if given and restarts[slot]:  # the dead worker's key may outlive it: a name of its own
            given = f"{given}.{restarts[slot]}"
        restarts[slot] += 1
        started_at[slot] = time.monotonic()
        children[_start(worker_class, wanted[slot], burst=burst, max_jobs=max_jobs, logging_level=logging_level,
                        name=given)] = slot

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping, stopped_at
        first = not stopping
        if not first and time.monotonic() - stopped_at < SIGNAL_DEBOUNCE:
            return  # the same request by another path (a signal to the whole process group, and one to us)
        stopping = True
        stopped_at = time.monotonic()
        logger.info("supervisor: %s, stopping %d workers%s", signal.Signals(signum).name, len(children),
                    "" if first else " (again: their running jobs are stopped now)")
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(len(wanted)):
        start(slot)
    logger.info("supervisor pid %d: %d workers (%s)", os.getpid(), len(children),
                ", ".join(f"{queue}×{wanted.count(queue)}" for queue in dict.fromkeys(wanted)))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        ended = children.pop(pid, None)
        if ended is None:
            continue
        slot = ended
        code = os.waitstatus_to_exitcode(status)
        if stopping or (burst and code == 0):
            continue
        if code == RECYCLE_EXIT:
            start(slot)
            continue
        deaths[slot] = 1 if time.monotonic() - started_at[slot] >= STABLE_AFTER else deaths[slot] + 1
        delay = restart_delay(deaths[slot])
        logger.warning("worker pid %d for queue %s exited (%s); starting another in %.0f s", pid, wanted[slot], code,
                       delay)
        until = time.monotonic() + delay
        while not stopping and time.monotonic() < until:  # a stop request ends the wait
            time.sleep(0.1)
        if not stopping:
            start(slot)
    return True
