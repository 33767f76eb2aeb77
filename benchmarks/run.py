"""Every benchmark of the project, this app next to plain RQ 3.0 (and optional peers), in one run on one private Redis.

    .venv/bin/python benchmarks/run.py [--quick] [--rounds N] [--only name,...] [--install-peers]
                                       [--json FILE] [--no-write]

One ``redis-server`` of its own on a free loopback port (``_common.private_redis``; the Redis named by your
environment is never used), ``DJANGO_SETTINGS_MODULE=benchmarks.settings`` (``tests.settings`` plus the ``bench``
queue, whose worker mode and concurrency come from ``BENCH_MODE`` / ``BENCH_CONCURRENCY``), a throw-away SQLite
database. The benchmarks (``--only`` takes these names):

- ``workers``: no-op jobs/s through ONE worker, draining N jobs added beforehand (``--burst``): this app in each
  mode ("processes" c=1, "threads" c=1 and c=50, "fork"), two worker processes ("processes" c=2), plain RQ's
  ``SimpleWorker`` and forking ``Worker``; jobs/s from the job hashes (first start to last end); Redis commands
  per job (INFO commandstats after CONFIG RESETSTAT; commands inside Lua count). Peers when installed.
- ``sleep``: 1,000 jobs of 100 ms at concurrency 50: this app's "threads" mode against ``rq worker-pool -n 50``.
- ``enqueue``: ``add`` / ``add_bulk`` against ``enqueue`` / ``enqueue_many`` (``enqueue_throughput.py``'s cases).
- ``latency``: add-to-start latency on an idle worker, p50 / p99.
- ``delayed``: delayed-job lateness (``delayed_lateness.py``'s logic, a shorter spread).
- ``schedulers``: job scheduler tick lateness on an idle worker: an ``every=1`` scheduler (``upsert_job_scheduler``)
  against plain RQ's ``rq cron`` (``CronScheduler``, ``interval=1``), N ticks each: p50 / p99 / max of start − tick,
  runs started before their tick, ticks missed or run twice.
- ``memory``: Redis memory per waiting job, ``add`` against ``enqueue`` of the same job and data.
- ``dashboard``: the admin dashboard's response time at 10 and 1,000,000 waiting jobs (``--quick``: 100,000).

Each round runs every contender of a benchmark once, in an order rotated from round to round; tables give the
median over the rounds and the spread (min–max). ``docs/benchmarks.md`` is rewritten section by section (with
``--only``, only those sections), each section saying the commit, machine and command it came from.

Peers (``--install-peers`` puts them in /tmp/queues-bench-peers, outside git; the project's venv is untouched):
BullMQ for Node (npm ``bullmq``, ``benchmarks/peer_bullmq.cjs``), BullMQ for Python and Celery (PyPI, a venv of
their own; ``benchmarks/peer_bullmq.py``, ``benchmarks/peer_celery.py``). They connect only to the private Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"  # the bench queue and its jobs, in every process

from benchmarks._common import (  # noqa: E402
    child_env,
    command_stats,
    load_average,
    machine,
    nearest_rank,
    parse_time,
    private_redis,
    start,
    stop,
    wait_until,
)

DOC = ROOT / "docs" / "benchmarks.md"
PEERS = Path(os.environ.get("QUEUES_BENCH_PEERS", "/tmp/queues-bench-peers"))  # noqa: S108 - throw-away, outside git
PEER_VENV_PY = PEERS / "venv" / "bin" / "python"
JSON_SERIALIZER = "rq.serializers.JSONSerializer"
NAMES = ("workers", "sleep", "enqueue", "latency", "delayed", "schedulers", "memory", "dashboard")
BATCH = 1000  # jobs per add_bulk / enqueue_many call when filling a queue

SIZES = {  # full run / --quick
    "full": {"noop": 10_000, "fork": 2_000, "rq_simple": 5_000, "rq_fork": 1_000, "peer_py": 5_000, "sleep": 1_000,
             "enqueue": 5_000, "latency": 300, "delayed_jobs": 200, "delayed_spread": 10.0, "scheduler_ticks": 60,
             "memory": 10_000, "dashboard": (10, 1_000_000), "dashboard_block": 5},
    "quick": {"noop": 2_000, "fork": 300, "rq_simple": 1_000, "rq_fork": 150, "peer_py": 1_000, "sleep": 1_000,
              "enqueue": 1_000, "latency": 90, "delayed_jobs": 40, "delayed_spread": 4.0, "scheduler_ticks": 20,
              "memory": 2_000, "dashboard": (10, 100_000), "dashboard_block": 3},
}


# --- small helpers ---------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """``median (min–max)`` of the rounds, or the single value."""
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("**met**" if met else "**not met**")


def goal_row(goal: str, measured: str, met: bool | None) -> str:
    """A goal's line; the summary at the top of the document collects these (marked ``<!-- goal -->``)."""
    return f"| {goal} | {measured} | {verdict(met)} | <!-- goal -->"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rotated(items: list[Any], round_number: int) -> list[Any]:
    k = round_number % len(items) if items else 0
    return items[k:] + items[:k]


def run_to_end(args: list[str], log_path: Path, env: dict[str, str], timeout: float,
               cwd: Path | None = None) -> float:
    """Run ``args`` to its end (it must exit 0) within ``timeout`` s; its wall time."""
    began = time.monotonic()
    proc = start(args, log_path, env) if cwd is None else _start_in(args, log_path, env, cwd)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError(f"{shlex.join(args)} ran over {timeout:.0f} s:\n"
                           f"{log_path.read_text(errors='replace')[-2000:]}") from None
    if code != 0:
        raise RuntimeError(f"{shlex.join(args)} exited {code}:\n{log_path.read_text(errors='replace')[-2000:]}")
    return time.monotonic() - began


def _start_in(args: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)


def drain_timeout(jobs: int, slowest_rate: float) -> float:
    return 60.0 + jobs / slowest_rate


def rq_span(client: Any, ids: list[str]) -> tuple[float, int]:
    """(last ``ended_at`` - first ``started_at``, jobs finished) from RQ-format job hashes (both sides)."""
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at", "status")
    rows = pipe.execute()
    starts = [t for s, _e, _st in rows if (t := parse_time(s)) is not None]
    ends = [t for _s, e, _st in rows if (t := parse_time(e)) is not None]
    finished = sum(1 for *_times, status in rows if status == b"finished")
    return (max(ends) - min(starts) if starts and ends else float("nan")), finished


# --- peers -----------------------------------------------------------------------------------------------------


def peers_available() -> dict[str, str]:
    """Installed peers: name -> how it was found; a peer missing is simply left out."""
    found = {}
    node = shutil.which("node")
    package = PEERS / "node_modules" / "bullmq" / "package.json"
    if node and package.exists():
        found["bullmq-node"] = "bullmq " + json.loads(package.read_text()).get("version", "?") + " (npm), node " + \
            subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if PEER_VENV_PY.exists():
        for name, module in (("bullmq-python", "bullmq"), ("celery", "celery")):
            probe = subprocess.run([str(PEER_VENV_PY), "-c", f"import importlib.metadata as m; "
                                    f"print(m.version({module!r}))"], capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                found[name] = f"{module} {probe.stdout.strip()} (PyPI)"
    return found


def install_peers() -> None:
    """npm ``bullmq`` + ``ioredis``, and a venv with PyPI ``bullmq`` and ``celery[redis]``, under PEERS."""
    PEERS.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    steps: list[tuple[str, list[str]]] = []
    if npm:
        if not (PEERS / "package.json").exists():
            (PEERS / "package.json").write_text('{"name": "queues-bench-peers", "private": true}\n')
        steps.append(("BullMQ for Node", [npm, "install", "--prefix", str(PEERS), "--no-audit", "--no-fund",
                                          "bullmq", "ioredis"]))  # bullmq 6 no longer brings ioredis itself
    else:
        log("peers: npm is not on PATH; BullMQ for Node left out")
    if not PEER_VENV_PY.exists():
        steps.append(("a venv for the Python peers", [sys.executable, "-m", "venv", str(PEERS / "venv")]))
    steps.append(("BullMQ for Python and Celery", [str(PEER_VENV_PY), "-m", "pip", "install", "--quiet",
                                                   "bullmq", "celery[redis]"]))
    for what, args in steps:
        log(f"peers: installing {what}: {shlex.join(args)}")
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            log(f"peers: installing {what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")


# --- contenders for the drain benchmarks (workers, sleep) ----------------------------------------------------


@dataclass
class Contender:
    name: str
    side: str  # "this app" | "plain RQ" | "peer"
    command: str  # what to show in the table
    jobs: int
    add: Callable[[int], list[str]]  # adds the jobs; returns ids for `span`
    drain: Callable[[Path], float]  # runs a worker until drained; returns its wall time
    span: Callable[[list[str]], tuple[float, int]]  # (first start .. last end in s, jobs finished)
    empty: bool = True  # a drain on an empty queue makes sense (burst workers)
    rates: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    commands: list[float] = field(default_factory=list)
    by_command: dict[str, float] = field(default_factory=dict)
    empty_wall: float | None = None
    empty_calls: int | None = None
    finished: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "side", "command", "jobs", "rates", "walls", "commands",
                                               "by_command", "empty_wall", "empty_calls", "finished", "errors")}


class Bench:
    """What every benchmark needs: the private server, a client, a scratch directory, the sizes, the rounds."""

    def __init__(self, url: str, directory: Path, sizes: dict[str, Any], rounds: int) -> None:
        import redis

        self.url = url
        self.directory = directory
        self.sizes = sizes
        self.rounds = rounds
        self.client = redis.Redis.from_url(url)
        self.peers = peers_available()

    def app_worker(self, mode: str, concurrency: int, *, burst: bool = True) -> tuple[list[str], dict[str, str]]:
        args = [sys.executable, "manage.py", "rqworker", "bench"] + (["--burst"] if burst else [])
        return args, child_env(BENCH_MODE=mode, BENCH_CONCURRENCY=str(concurrency))

    def rq_worker(self, worker_class: str | None, queue: str = "plain", *, burst: bool = True) -> list[str]:
        args = [sys.executable, "-m", "rq.cli", "worker", "--serializer", JSON_SERIALIZER, "--url", self.url]
        if burst:
            args.append("--burst")
        if worker_class:
            args += ["--worker-class", worker_class]
        return [*args, queue]

    # adding ------------------------------------------------------------------------------------------------

    def add_app(self, func: Any, data: Callable[[int], dict[str, Any]]) -> Callable[[int], list[str]]:
        from queues import get_queue

        def add(n: int) -> list[str]:
            queue = get_queue("bench")
            ids: list[str] = []
            for first in range(0, n, BATCH):
                handles = queue.add_bulk([{"job": func, "data": data(i)} for i in range(first, min(first + BATCH, n))])
                ids += [handle.id for handle in handles]
            return ids
        return add

    def add_rq(self, path: str, kwargs: Callable[[int], dict[str, Any]]) -> Callable[[int], list[str]]:
        import redis
        import rq
        from rq.serializers import JSONSerializer

        def add(n: int) -> list[str]:
            connection = redis.Redis.from_url(self.url)
            try:
                queue = rq.Queue("plain", connection=connection, serializer=JSONSerializer)
                ids: list[str] = []
                for first in range(0, n, BATCH):
                    datas = [rq.Queue.prepare_data(path, kwargs=kwargs(i)) for i in range(first, min(first + BATCH, n))]
                    ids += [job.id for job in queue.enqueue_many(datas)]
                return ids
            finally:
                connection.close()
        return add

    def burst(self, args: list[str], env: dict[str, str], jobs: int, slowest: float) -> Callable[[Path], float]:
        return lambda log_path: run_to_end(args, log_path, env, drain_timeout(jobs, slowest))

    # peers -------------------------------------------------------------------------------------------------

    def peer_contenders(self, kind: str, jobs: int, concurrency: int, seconds: float = 0.0) -> list[Contender]:
        out = []
        py_jobs = min(jobs, self.sizes["peer_py"]) if kind == "noop" else jobs
        env = {**child_env(), "BENCH_REDIS_URL": self.url}
        if "bullmq-node" in self.peers:
            node_env = {**env, "NODE_PATH": str(PEERS / "node_modules")}
            script = str(ROOT / "benchmarks" / "peer_bullmq.cjs")
            out.append(self._bullmq_peer("BullMQ (Node)", ["node", script], node_env, kind, jobs, concurrency,
                                         seconds, f"node benchmarks/peer_bullmq.cjs, concurrency {concurrency}"))
        if "bullmq-python" in self.peers:
            script = str(ROOT / "benchmarks" / "peer_bullmq.py")
            out.append(self._bullmq_peer("BullMQ (Python)", [str(PEER_VENV_PY), script], env, kind, py_jobs,
                                         concurrency, seconds, f"benchmarks/peer_bullmq.py, concurrency {concurrency}"))
        if "celery" in self.peers:
            out.append(self._celery_peer(kind, py_jobs, concurrency, seconds, env))
        return out

    def _bullmq_peer(self, name: str, base: list[str], env: dict[str, str], kind: str, jobs: int, concurrency: int,
                     seconds: float, command: str) -> Contender:
        queue = "benchq"

        def add(n: int) -> list[str]:
            run_to_end([*base, "add", self.url, queue, kind, str(n), str(seconds)], self.directory / "peer-add.log",
                       env, drain_timeout(n, 200))
            return [str(i) for i in range(1, n + 1)]  # BullMQ numbers jobs 1, 2, ... on a fresh server

        def drain(log_path: Path) -> float:
            return run_to_end([*base, "work", self.url, queue, kind, str(jobs), str(seconds), str(concurrency)],
                              log_path, env, drain_timeout(jobs, 50))

        def span(ids: list[str]) -> tuple[float, int]:
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(f"bull:{queue}:{job_id}", "processedOn", "finishedOn")
            rows = pipe.execute()
            starts = [int(s) / 1000 for s, e in rows if s]
            ends = [int(e) / 1000 for s, e in rows if e]
            done = self.client.zcard(f"bull:{queue}:completed")
            return (max(ends) - min(starts) if starts and ends else float("nan")), done

        return Contender(f"{name}, concurrency {concurrency}", "peer", command, jobs, add, drain, span, empty=False)

    def _celery_peer(self, kind: str, jobs: int, concurrency: int, seconds: float, env: dict[str, str]) -> Contender:
        pool = ["-P", "solo"] if concurrency == 1 else ["-P", "threads", "-c", str(concurrency)]
        celery = [str(PEER_VENV_PY), "-m", "celery", "-A", "benchmarks.peer_celery", "worker", "-Q", "benchq",
                  "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING", *pool]
        run_env = {**env, "BENCH_N": str(jobs)}

        def add(n: int) -> list[str]:
            run_to_end([str(PEER_VENV_PY), "-m", "benchmarks.peer_celery", "add", kind, str(n), str(seconds)],
                       self.directory / "peer-add.log", run_env, drain_timeout(n, 100))
            return []

        def drain(log_path: Path) -> float:
            began = time.monotonic()
            proc = start(celery, log_path, run_env)
            try:
                wait_until(lambda: self.client.exists("benchq:celery:done"), drain_timeout(jobs, 50),
                           "the Celery worker to run every task", proc, log_path, step=0.05)
            finally:
                stop(proc)
            return time.monotonic() - began

        def span(_ids: list[str]) -> tuple[float, int]:
            raw = self.client.get("benchq:celery:done")
            if not raw:
                return float("nan"), 0
            done = json.loads(raw)
            return done["last"] - done["first"], done["count"]

        what = "solo pool" if concurrency == 1 else f"threads pool, concurrency {concurrency}"
        return Contender(f"Celery, {what}", "peer", f"celery worker {shlex.join(pool)}", jobs, add, drain, span,
                         empty=False)

    # the drain loop ----------------------------------------------------------------------------------------------

    def drain_rounds(self, contenders: list[Contender], label: str) -> None:
        """Each round: every contender once (order rotated): FLUSHALL, add its jobs, CONFIG RESETSTAT, drain."""
        for r in range(self.rounds):
            for c in rotated(contenders, r):
                slug = re.sub(r"[^a-z0-9]+", "-", c.name.lower())
                try:
                    if r == 0 and c.empty:
                        self.client.flushall()
                        self.client.config_resetstat()
                        c.empty_wall = c.drain(self.directory / f"{label}-{slug}-empty.log")
                        c.empty_calls = sum(command_stats(self.client).values())
                    self.client.flushall()
                    ids = c.add(c.jobs)
                    self.client.config_resetstat()
                    wall = c.drain(self.directory / f"{label}-{slug}-{r}.log")
                    calls = command_stats(self.client)
                    seconds, finished = c.span(ids)
                except Exception as e:  # noqa: BLE001 - report it and go on with the others
                    c.errors.append(f"round {r + 1}: {str(e)[:1500]}")
                    log(f"  {c.name}: FAILED in round {r + 1}: {str(e)[:400]}")
                    continue
                c.walls.append(wall)
                c.finished.append(finished)
                c.rates.append(c.jobs / seconds if seconds > 0 else float("nan"))
                c.commands.append(sum(calls.values()) / c.jobs)
                if r == 0:
                    c.by_command = {name: n / c.jobs for name, n in sorted(calls.items(), key=lambda kv: -kv[1])}
                log(f"  round {r + 1} {c.name}: {c.rates[-1]:,.0f} jobs/s, {c.commands[-1]:.2f} commands/job, "
                    f"{finished}/{c.jobs} finished, wall {wall:.1f} s")
        self.client.flushall()


# --- the benchmarks ---------------------------------------------------------------------------------------------


def bench_workers(b: Bench) -> dict[str, Any]:
    from benchmarks import jobs

    s = b.sizes
    app_add = b.add_app(jobs.noop, lambda i: {"i": i})
    rq_add = b.add_rq("benchmarks.plain_jobs.noop", lambda i: {"i": i})
    contenders = []
    for name, mode, conc, n, slowest in (("processes", "processes", 1, s["noop"], 50),
                                         ("threads", "threads", 1, s["noop"], 50),
                                         ("threads", "threads", 50, s["noop"], 50),
                                         ("fork", "fork", 1, s["fork"], 10),
                                         ("processes", "processes", 2, s["noop"], 50)):
        args, env = b.app_worker(mode, conc)
        label = f"this app, {name} c={conc}" + (" (two worker processes)" if mode == "processes" and conc == 2 else "")
        contenders.append(Contender(label, "this app", f"BENCH_MODE={mode} BENCH_CONCURRENCY={conc} "
                                    "manage.py rqworker bench --burst", n, app_add, b.burst(args, env, n, slowest),
                                    lambda ids: rq_span(b.client, ids)))
    for label, worker_class, n, slowest in (("plain RQ, SimpleWorker", "rq.worker.SimpleWorker", s["rq_simple"], 20),
                                            ("plain RQ, Worker (forking)", None, s["rq_fork"], 5)):
        args = b.rq_worker(worker_class)
        command = "rq worker --burst" + (f" --worker-class {worker_class}" if worker_class else "")
        contenders.append(Contender(label, "plain RQ", command, n, rq_add, b.burst(args, child_env(), n, slowest),
                                    lambda ids: rq_span(b.client, ids)))
    for conc in (1, 50):
        contenders += b.peer_contenders("noop", s["noop"], conc)
    b.drain_rounds(contenders, "workers")
    return {"contenders": [c.row() for c in contenders]}


def bench_sleep(b: Bench) -> dict[str, Any]:
    from benchmarks import jobs

    n = b.sizes["sleep"]
    args, env = b.app_worker("threads", 50)
    contenders = [
        Contender("this app, threads c=50", "this app", "BENCH_MODE=threads BENCH_CONCURRENCY=50 manage.py rqworker "
                  "bench --burst", n, b.add_app(jobs.sleep, lambda i: {"seconds": 0.1, "i": i}),
                  b.burst(args, env, n, 5), lambda ids: rq_span(b.client, ids)),
        Contender("plain RQ, worker-pool of 50 SimpleWorkers", "plain RQ",
                  "rq worker-pool --burst -n 50 -w rq.worker.SimpleWorker", n,
                  b.add_rq("benchmarks.plain_jobs.sleep", lambda i: {"seconds": 0.1, "i": i}),
                  b.burst([sys.executable, "-m", "rq.cli", "worker-pool", "--burst", "-n", "50", "-w",
                           "rq.worker.SimpleWorker", "--serializer", JSON_SERIALIZER, "--url", b.url, "plain"],
                          child_env(), n, 5), lambda ids: rq_span(b.client, ids)),
    ]
    contenders += b.peer_contenders("sleep", n, 50, 0.1)
    b.drain_rounds(contenders, "sleep")
    return {"contenders": [c.row() for c in contenders]}


def bench_enqueue(b: Bench) -> dict[str, Any]:
    from benchmarks import enqueue_throughput as et

    n = b.sizes["enqueue"]
    trips = et.RoundTrips()
    with trips.install():
        cases = et.build_cases(b.client, b.url, et.PLAIN_FUNC)
        for r in range(b.rounds):
            for case in rotated(cases, r):
                et.measure(case, b.client, n, trips, detail=r == 0)
            log(f"  round {r + 1}: " + ", ".join(f"{c.name} {c.rates[-1]:,.0f}" for c in cases))
    b.client.flushall()
    return {"jobs": n, "cases": [{"name": c.name, "side": c.side, "rates": c.rates,
                                  "commands": sum(c.commands.values()), "round_trips": c.round_trips,
                                  "hash_bytes": c.hash_bytes, "encoding": c.encoding,
                                  "memory_per_job": c.memory_per_job, "found": c.found} for c in cases]}


def bench_latency(b: Bench) -> dict[str, Any]:
    import redis
    import rq
    from rq.serializers import JSONSerializer

    from benchmarks import jobs
    from queues import get_queue

    b.client.flushall()
    total = b.sizes["latency"]
    per_round = max(1, total // b.rounds)
    app_args, app_env = b.app_worker("processes", 1, burst=False)
    sides: dict[str, dict[str, Any]] = {
        "this app": {"args": app_args, "env": app_env, "queue": "bench",
                     "command": "manage.py rqworker bench (processes, c=1), add(stamp, ...)"},
        "plain RQ": {"args": b.rq_worker("rq.worker.SimpleWorker", burst=False), "env": child_env(), "queue": "plain",
                     "command": "rq worker --worker-class rq.worker.SimpleWorker, enqueue(stamp, ...)"},
    }
    connection = redis.Redis.from_url(b.url)
    plain = rq.Queue("plain", connection=connection, serializer=JSONSerializer)
    app = get_queue("bench")
    rng = random.Random(7)
    procs = {}
    try:
        for name, side in sides.items():
            log_path = b.directory / f"latency-{name.replace(' ', '-')}.log"
            procs[name] = start(side["args"], log_path, side["env"])
            wait_until(lambda q=side["queue"]: b.client.scard(f"rq:workers:{q}") > 0, 60, f"{name}'s worker",
                       procs[name], log_path)
            side.update(job=[], started=[], add_ms=[], round_p50=[], missed=0)
        time.sleep(1.0)  # both settle into their blocking wait
        for r in range(b.rounds):
            for name in rotated(list(sides), r):
                side = sides[name]
                this_round = []
                for n in range(per_round):
                    if side["missed"] >= 5:
                        break
                    time.sleep(rng.uniform(0.005, 0.030))
                    key = f"latency:{name[0]}:{r}:{n}"
                    began = time.time()
                    if name == "this app":
                        job_id = app.add(jobs.stamp, {"key": key}).id
                    else:
                        job_id = plain.enqueue("benchmarks.plain_jobs.stamp", key=key).id
                    added = time.time()
                    reply = b.client.blpop([key], timeout=5)
                    if reply is None:
                        side["missed"] += 1
                        continue
                    ms = (float(reply[1]) - began) * 1000
                    this_round.append(ms)
                    side["job"].append(ms)
                    side["add_ms"].append((added - began) * 1000)
                    started = parse_time(b.client.hget(f"rq:job:{job_id}", "started_at"))
                    if started is not None:
                        side["started"].append((started - began) * 1000)
                if this_round:
                    side["round_p50"].append(nearest_rank(this_round, 50))
                p50 = nearest_rank(this_round, 50) if this_round else float("nan")
                log(f"  round {r + 1} {name}: p50 {p50:.2f} ms")
    finally:
        for proc in procs.values():
            stop(proc)
        connection.close()
    b.client.flushall()
    out = {}
    for name, side in sides.items():
        values = side["job"]
        out[name] = {"command": side["command"], "n": len(values), "missed": side["missed"],
                     "p50": nearest_rank(values, 50) if values else None,
                     "p99": nearest_rank(values, 99) if values else None,
                     "max": max(values) if values else None,
                     "started_p50": nearest_rank(side["started"], 50) if side["started"] else None,
                     "started_p99": nearest_rank(side["started"], 99) if side["started"] else None,
                     "add_p50": nearest_rank(side["add_ms"], 50) if side["add_ms"] else None,
                     "round_p50": side["round_p50"], "samples_ms": values}
    return out


def bench_delayed(b: Bench) -> dict[str, Any]:
    from benchmarks import delayed_lateness as dl

    jobs, spread_s = b.sizes["delayed_jobs"], b.sizes["delayed_spread"]
    results: dict[str, list[dict[str, Any]]] = {"this app": [], "plain RQ": []}
    for r in range(b.rounds):
        delays = [random.Random(1000 * r + i).uniform(1.0, spread_s) for i in range(jobs)]
        for name in rotated(list(results), r):
            b.client.flushall()
            try:
                if name == "this app":
                    result = dl.run_app(b.client, delays, b.directory)
                else:
                    result = dl.run_plain(b.client, b.url, delays, b.directory)
            except Exception as e:  # noqa: BLE001
                log(f"  {name}: FAILED in round {r + 1}: {str(e)[:400]}")
                continue
            result.pop("raw", None)
            results[name].append(result)
            a = result["all"]
            log(f"  round {r + 1} {name}: p50 {a.get('p50', float('nan')):.1f} ms, p99 {a.get('p99', float('nan')):.1f}"
                f" ms, not run {result['not_run']}")
    b.client.flushall()
    return {"jobs": jobs, "spread": spread_s, "results": results}


SCHEDULER_ID = "bench-tick"  # the job scheduler of the ``schedulers`` benchmark (both sides)
TICK_TOLERANCE = 0.0015  # s: a run's tick may differ from the grid by the rounding to whole milliseconds


def quiet_until(when: float, procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Wait until ``when`` (POSIX time) sending Redis nothing (``delayed_lateness.quiet_until``, for several
    processes): a command would wake Redis's event loop and make an idle worker's wake-ups more punctual."""
    while (left := when - time.time()) > 0:
        for proc, log_path in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[2:5]} exited ({proc.returncode}):\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(min(left, 0.5))


def read_tick_stamps(client: Any, key: str, settle_until: int) -> list[tuple[str, float]]:
    """The ``(job id, started)`` pairs the tick jobs pushed; first up to 10 s for ``settle_until`` of them."""
    deadline = time.monotonic() + 10
    while client.llen(key) < settle_until and time.monotonic() < deadline:
        time.sleep(0.1)
    return [(item["id"], item["started"]) for item in (json.loads(raw) for raw in client.lrange(key, 0, -1))]


def score_ticks(window: range, runs: list[dict[str, Any]], missing: Callable[[int], str]) -> dict[str, Any]:
    """Lateness (start − tick, ms) of the runs whose tick number ``k`` is in ``window``; which ticks of the window
    have no run, and which have more than one (``runs``: ``{"id", "k", "tick" (s), "started" (s)}``)."""
    by_tick: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        by_tick.setdefault(run["k"], []).append(run)
    inside = sorted((run for run in runs if run["k"] in window), key=lambda run: run["k"])
    lateness = [(run["started"] - run["tick"]) * 1000 for run in inside]
    marked = [(run["started_at"] - run["tick"]) * 1000 for run in inside if run.get("started_at") is not None]
    out: dict[str, Any] = {
        "ticks": len(window), "runs": len(inside), "after_window": sum(1 for r in runs if r["k"] > window[-1]),
        "early_runs": [f"{run['id']} ({ms:+.3f} ms)" for run, ms in zip(inside, lateness, strict=True) if ms < 0],
        "missed_ticks": [missing(k) for k in window if k not in by_tick],
        "twice_ticks": [f"tick {k}: " + ", ".join(run["id"] for run in by_tick[k])
                        for k in window if len(by_tick.get(k, [])) > 1],
        "lateness_ms": lateness, "started_at_ms": marked,
    }
    out.update(early=len(out["early_runs"]), missed=len(out["missed_ticks"]), twice=len(out["twice_ticks"]))
    if lateness:
        out.update(p50=nearest_rank(lateness, 50), p99=nearest_rank(lateness, 99), max=max(lateness),
                   min=min(lateness))
    return out


def scheduler_app(b: Bench, ticks: int, r: int) -> dict[str, Any]:
    """This app: ``upsert_job_scheduler(every=1)`` with one idle ``manage.py rqworker bench``; ticks k = 1..N: the
    scheduler's first tick (``next`` in the upsert's reply) + (k - 1) s."""
    from benchmarks import jobs
    from benchmarks.plain_jobs import TICK_STAMPS
    from queues import get_queue
    from queues.schedulers import RUN_PREFIX

    args, env = b.app_worker("processes", 1, burst=False)
    log_path = b.directory / f"schedulers-app-{r}.log"
    worker = start(args, log_path, env)
    queue = get_queue("bench")
    try:
        wait_until(lambda: b.client.scard("rq:workers:bench") > 0, 60, "the app's worker", worker, log_path)
        time.sleep(1.0)  # let it settle into its blocking wait
        # Upsert mid-second: the first tick is then ≥ 0.5 s away (the next whole second, or the upsert + 1 s), so the
        # reply's `next` is still the first tick and not already the second (the worker taking the first at once).
        time.sleep((0.5 - time.time() % 1) % 1)
        before = time.time()
        first = queue.upsert_job_scheduler(SCHEDULER_ID, jobs.tick, {"key": TICK_STAMPS}, every=1)["next"].timestamp()
        after = time.time()
        anchor = first - 1  # tick k = anchor + k s
        quiet_until(anchor + ticks + 0.3, [(worker, log_path)])
        stamps = read_tick_stamps(b.client, TICK_STAMPS, ticks)
    finally:
        code = stop(worker)
    queue.remove_job_scheduler(SCHEDULER_ID)
    prefix = f"{RUN_PREFIX}{SCHEDULER_ID}-"
    runs, off_grid, foreign, field_mismatch = [], [], [], []
    pipe = b.client.pipeline(transaction=False)
    for job_id, _started in stamps:
        pipe.hmget(f"rq:job:{job_id}", "tick", "started_at")
    for (job_id, started), (tick_field, started_at) in zip(stamps, pipe.execute(), strict=True):
        suffix = job_id.removeprefix(prefix)
        if not job_id.startswith(prefix) or not suffix.isdigit():
            foreign.append(job_id)
            continue
        tick = int(suffix) / 1000  # the tick, from the run's id
        if tick_field is None or int(tick_field) != int(suffix):
            field_mismatch.append(f"{job_id}: tick field {tick_field!r}")
        k = round(tick - anchor)
        if abs(tick - (anchor + k)) > TICK_TOLERANCE:
            off_grid.append(job_id)
        runs.append({"id": job_id, "k": k, "started": started, "tick": tick, "started_at": parse_time(started_at)})

    def missing(k: int) -> str:
        job_id = f"{prefix}{round((anchor + k) * 1000)}"
        status = b.client.hget(f"rq:job:{job_id}", "status")
        return f"{job_id} ({'no job' if status is None else status.decode()})"

    # lateness against the run's own tick (its id); the grid (anchor + k s) decides missed and twice
    result = score_ticks(range(1, ticks + 1), runs, missing)
    last = max((run for run in runs if run["k"] <= ticks), key=lambda run: run["k"], default=None)
    result.update(worker_exit=code, off_grid=off_grid, foreign=foreign, field_mismatch=field_mismatch,
                  first_tick_after_upsert_s=first - before, first_tick_odd=not before < first <= after + 1,
                  drift_ms=(last["tick"] - (anchor + last["k"])) * 1000 if last else None)
    return result


def scheduler_rq(b: Bench, ticks: int, r: int) -> dict[str, Any]:
    """Plain RQ: ``rq cron benchmarks.plain_cron`` (``interval=1``) with one idle ``rq worker`` (SimpleWorker);
    intended ticks: the first enqueue + k s, k = 0..N-1, a run matched to its tick by its ``enqueued_at``."""
    from rq.cron import get_cron_job_history_key

    from benchmarks.plain_jobs import TICK_STAMPS

    worker_log, cron_log = b.directory / f"schedulers-rq-worker-{r}.log", b.directory / f"schedulers-rq-cron-{r}.log"
    worker = start([sys.executable, "-m", "rq.cli", "worker", "--url", b.url, "--worker-class",
                    "rq.worker.SimpleWorker", "plain"], worker_log, child_env())
    cron = None
    history = get_cron_job_history_key(SCHEDULER_ID)
    try:
        wait_until(lambda: b.client.scard("rq:workers:plain") > 0, 60, "the plain RQ worker", worker, worker_log)
        time.sleep(1.0)
        cron = start([sys.executable, "-m", "rq.cli", "cron", "--url", b.url, "benchmarks.plain_cron"], cron_log,
                     child_env())
        wait_until(lambda: b.client.zcard(history) > 0, 60, "RQ's cron to enqueue its first run", cron, cron_log,
                   step=0.02)
        first = b.client.zrange(history, 0, 0, withscores=True)[0][1]
        quiet_until(first + ticks - 1 + 0.3, [(worker, worker_log), (cron, cron_log)])
        stamps = read_tick_stamps(b.client, TICK_STAMPS, ticks)
    finally:
        if cron is not None:
            stop(cron)
        code = stop(worker)
    enqueued = {raw.decode(): score for raw, score in b.client.zrange(history, 0, -1, withscores=True)}
    t0 = min(enqueued.values())  # the documented schedule: the first enqueue, then every `interval` seconds
    runs = []
    for job_id, started in stamps:
        enqueued_at, started_at = b.client.hmget(f"rq:job:{job_id}", "enqueued_at", "started_at")
        at = enqueued.get(job_id) or parse_time(enqueued_at)
        runs.append({"id": job_id, "k": round(at - t0), "tick": t0 + round(at - t0), "started": started,
                     "started_at": parse_time(started_at)})

    def missing(k: int) -> str:
        near = [job_id for job_id, at in enqueued.items() if round(at - t0) == k]
        return f"tick {k} ({'enqueued as ' + ', '.join(near) + ', not run' if near else 'not enqueued'})"

    result = score_ticks(range(ticks), runs, missing)
    in_window = [at for at in enqueued.values() if round(at - t0) < ticks]
    last = max(in_window)
    result.update(worker_exit=code, enqueued=len(in_window), drift_ms=(last - (t0 + round(last - t0))) * 1000)
    return result


def bench_schedulers(b: Bench) -> dict[str, Any]:
    ticks = b.sizes["scheduler_ticks"]
    results: dict[str, list[dict[str, Any]]] = {"this app": [], "plain RQ": []}
    for r in range(b.rounds):
        for name in rotated(list(results), r):
            b.client.flushall()
            try:
                result = scheduler_app(b, ticks, r) if name == "this app" else scheduler_rq(b, ticks, r)
            except Exception as e:  # noqa: BLE001 - report it and go on
                log(f"  {name}: FAILED in round {r + 1}: {str(e)[:400]}")
                results[name].append({"error": str(e)[:1500]})
                continue
            results[name].append(result)
            problems = result["early_runs"] + result["missed_ticks"] + result["twice_ticks"]
            log(f"  round {r + 1} {name}: {result['runs']}/{ticks} ticks run, p50 {result.get('p50', float('nan')):.1f}"
                f" ms, p99 {result.get('p99', float('nan')):.1f} ms, max {result.get('max', float('nan')):.1f} ms; "
                f"early {result['early']}, missed {result['missed']}, twice {result['twice']}"
                + (f"\n    {'; '.join(problems)}" if problems else ""))
    b.client.flushall()
    return {"ticks": ticks, "results": results}


def bench_memory(b: Bench) -> dict[str, Any]:
    import redis
    import rq
    from rq.serializers import JSONSerializer

    from benchmarks import jobs
    from queues import get_queue

    n = b.sizes["memory"]
    connection = redis.Redis.from_url(b.url)
    plain = rq.Queue("plain", connection=connection, serializer=JSONSerializer)
    app = get_queue("bench")
    sides: dict[str, dict[str, Any]] = {
        "this app": {"add": lambda i: app.add(jobs.noop, {"i": i}), "list": "rq:queue:bench",
                     "command": 'get_queue("bench").add(benchmarks.jobs.noop, {"i": i})'},
        "plain RQ": {"add": lambda i: plain.enqueue("benchmarks.jobs.noop", i=i), "list": "rq:queue:plain",
                     "command": 'Queue("plain", serializer=JSONSerializer).enqueue("benchmarks.jobs.noop", i=i)'},
    }
    for side in sides.values():
        side.update(per_job=[], hash_bytes=None, encoding="", fields=0, waiting=0, other_keys={})
    try:
        for r in range(b.rounds):
            for name in rotated(list(sides), r):
                side = sides[name]
                b.client.flushall()
                for i in range(50):  # scripts loaded, connections open
                    side["add"](i)
                b.client.flushall()
                before = b.client.info("memory")["used_memory"]
                ids = [side["add"](i).id for i in range(n)]
                side["per_job"].append((b.client.info("memory")["used_memory"] - before) / n)
                key = f"rq:job:{ids[0]}"
                side["hash_bytes"] = b.client.memory_usage(key, samples=0)
                side["encoding"] = b.client.object("encoding", key).decode()
                side["fields"] = b.client.hlen(key)
                side["waiting"] = b.client.llen(side["list"])
                others = {k.decode(): b.client.memory_usage(k, samples=0) or 0
                          for k in b.client.scan_iter(count=1000) if not k.startswith(b"rq:job:")}
                side["other_keys"] = {k: v / n for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:4]}
                log(f"  round {r + 1} {name}: {side['per_job'][-1]:.0f} bytes/job, hash {side['hash_bytes']} bytes")
    finally:
        connection.close()
    b.client.flushall()
    return {"jobs": n, "sides": {name: {k: v for k, v in side.items() if k != "add"} for name, side in sides.items()}}


def bench_dashboard(b: Bench) -> dict[str, Any]:
    import redis
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client, override_settings
    from django.test.utils import setup_test_environment

    from benchmarks import dashboard as dash
    from queues import get_queue
    from tests.testapp.jobs import add

    sizes = list(b.sizes["dashboard"])
    block = b.sizes["dashboard_block"]
    setup_test_environment()  # the test client's ALLOWED_HOSTS ("testserver")
    call_command("migrate", verbosity=0)
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", password="bench-pw")
    web = Client()
    web.force_login(user)
    base = b.url.rsplit("/", 1)[0]
    urls = {size: f"{base}/{db}" for db, size in enumerate(sizes)}
    clients = {size: redis.Redis.from_url(url) for size, url in urls.items()}
    pages = {"dashboard": "/admin/queues/queue/", "JSON endpoint": "/admin/queues/queue/_stats/",
             "django-rq's queue list (what plain RQ + django-rq show)": "/admin/django-rq/"}
    times: dict[tuple[str, int], list[float]] = {(p, s): [] for p in pages for s in sizes}
    commands: dict[tuple[str, int], float] = {}
    filled = {}
    try:
        b.client.flushall()
        template_job = get_queue(dash.QUEUE).add(add, {"a": 1, "b": 2})
        template = clients[sizes[0]].hgetall(f"rq:job:{template_job.id}")
        clients[sizes[0]].flushdb()
        for size in sizes:
            filled[size] = dash.fill(clients[size], template, 0, size)
            log(f"  {size:,} waiting jobs written in {filled[size]:.1f} s")
        for page, path in list(pages.items()):
            with override_settings(QUEUES_REDIS={"URL": urls[sizes[0]]}):
                if web.get(path).status_code != 200:
                    log(f"  {page}: {path} did not answer 200; left out")
                    del pages[page]
        for r in range(b.rounds):
            for page, path in rotated(list(pages.items()), r):
                for size in sizes:
                    with override_settings(QUEUES_REDIS={"URL": urls[size]}):
                        dash.timed(web, path)  # opens the connection to this size's database
                        if r == 0:
                            clients[size].config_resetstat()
                        times[page, size] += [dash.timed(web, path) for _ in range(block)]
                        if r == 0:
                            commands[page, size] = sum(command_stats(clients[size]).values()) / block
            log(f"  round {r + 1}: " + ", ".join(f"{p} @{s:,} {med(times[p, s]):.1f} ms" for p in pages for s in sizes))
        memory = b.client.info("memory")["used_memory"]
    finally:
        for each in clients.values():
            each.flushdb()
            each.close()
    return {"sizes": sizes, "block": block, "filled_s": filled, "used_memory": memory,
            "pages": [{"page": p, "path": pages[p], "size": s, "median_ms": med(times[p, s]),
                       "p90_ms": nearest_rank(times[p, s], 90), "min_ms": min(times[p, s]),
                       "commands": commands.get((p, s)), "times_ms": times[p, s]} for p in pages for s in sizes]}


BENCHMARKS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "enqueue": bench_enqueue, "memory": bench_memory, "workers": bench_workers, "sleep": bench_sleep,
    "latency": bench_latency, "delayed": bench_delayed, "schedulers": bench_schedulers, "dashboard": bench_dashboard,
}


# --- the report -------------------------------------------------------------------------------------------------


def provenance(meta: dict[str, Any], elapsed: float | None = None) -> str:
    took = f", {elapsed:.0f} s" if elapsed is not None else ""
    return (f"*Measured {meta['date']} with `{meta['command']}`{took}: {meta['code']}; {meta['cpus']} CPUs "
            f"({meta['platform']}), 1/5/15-min load average before the run {meta['load']}; Python {meta['python']}, "
            f"{meta['redis-server']}; {meta['versions']}.*")


def contender_table(rows: list[dict[str, Any]], *, commands: bool = True) -> list[str]:
    head = "| worker | command | jobs | jobs/s, median (min–max) | ms/job | drain wall s, median |"
    line = "|---|---|---:|---:|---:|---:|"
    if commands:
        head += " Redis commands / job | net of an empty run |"
        line += "---:|---:|"
    lines = [head + " finished |", line + "---:|"]
    for c in rows:
        if not c["rates"]:
            why = (c["errors"] or ["?"])[0][:200].splitlines()[0]
            lines.append(f"| {c['name']} | `{c['command']}` | {c['jobs']:,} | failed: {why} | | | "
                         + ("| | " if commands else "") + "|")
            continue
        rate = med(c["rates"])
        cells = (f"| {c['name']} | `{c['command']}` | {c['jobs']:,} | {spread(c['rates'])} | {1000 / rate:.2f} | "
                 f"{med(c['walls']):.1f} |")
        if commands:
            net = "–"
            if c["empty_calls"] is not None and c["commands"]:
                net = f"{med(c['commands']) - c['empty_calls'] / c['jobs']:.2f}"
            cells += f" {med(c['commands']):.2f} | {net} |"
        finished = f"{min(c['finished'])}/{c['jobs']}" + (" (a round failed)" if c["errors"] else "")
        lines.append(cells + f" {finished} |")
    return lines


def by_name(rows: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((c for c in rows if c["name"] == name and c["rates"]), None)


def section_workers(data: dict[str, Any]) -> list[str]:
    rows = data["contenders"]
    out = ["## No-op jobs through one worker (and two), and Redis commands per job", "",
           "N no-op jobs are added beforehand (`add_bulk` / `enqueue_many`, 1,000 a call); then ONE worker drains "
           "them (`--burst`: it exits when nothing is ready). Every round runs each worker once, on a flushed "
           "server, in an order rotated from round to round. **jobs/s** = N / (last end − first start), read from "
           "the job hashes the worker writes (`started_at` / `ended_at`; BullMQ: `processedOn` / `finishedOn`; "
           "Celery: first `task_prerun` to last `task_postrun`), so process start-up is left out. **Redis commands "
           "/ job** = `INFO commandstats` after the drain (`CONFIG RESETSTAT` just before the worker starts; "
           "commands run inside Lua scripts count) / N; *net* subtracts a burst run on the empty queue (start-up, "
           "registration, shut-down), measured once. This app's jobs: `benchmarks.jobs.noop` on the `bench` queue "
           "(one attempt, no retention limit); plain RQ's: `benchmarks.plain_jobs.noop`, JSON serializer.", ""]
    out += contender_table(rows)
    out += ["", "| goal | measured | |", "|---|---|---|"]
    one = by_name(rows, "this app, processes c=1")
    two = by_name(rows, "this app, processes c=2 (two worker processes)")
    if one and two:
        ratio = med(two["rates"]) / med(one["rates"])
        out.append(goal_row("two worker processes ≥ 1.6× one (\"processes\" c=2 against c=1)",
                            f"{ratio:.2f}× ({med(two['rates']):,.0f} against {med(one['rates']):,.0f} jobs/s)",
                            ratio >= 1.6))
    if one:
        app = med(one["rates"])
        out.append(goal_row("one worker, default mode, ≥ 3,000 no-op jobs/s", f"{app:,.0f} jobs/s", app >= 3000))
        for name, times in (("plain RQ, SimpleWorker", 8), ("plain RQ, Worker (forking)", 50)):
            other = by_name(rows, name)
            if other:
                ratio = app / med(other["rates"])
                out.append(goal_row(f"one worker, default mode, ≥ {times}× {name}", f"{ratio:.1f}×", ratio >= times))
        peers = (("BullMQ (Python), concurrency 1", one), ("BullMQ (Python), concurrency 50",
                                                          by_name(rows, "this app, threads c=50")))
        for name, ours in peers:
            other = by_name(rows, name)
            if other and ours:
                mine, theirs = med(ours["rates"]), med(other["rates"])
                out.append(goal_row(f"{ours['name']} ahead of {name}", f"{mine:,.0f} against {theirs:,.0f} jobs/s",
                                    mine > theirs))
    for c in rows:
        if c["side"] == "this app" and c["commands"]:
            value = med(c["commands"])
            out.append(goal_row(f"Redis commands per job ≤ 24: {c['name']}", f"{value:.2f}", value <= 24))
    out += ["", "Redis commands per job by name (first round; ≥ 0.01 per job):", ""]
    for c in rows:
        if c["by_command"]:
            parts = ", ".join(f"`{name}` {n:.2f}" for name, n in c["by_command"].items() if n >= 0.005)
            out.append(f"- {c['name']}: {parts}")
    return out


def section_sleep(data: dict[str, Any]) -> list[str]:
    rows = data["contenders"]
    out = ["## 1,000 jobs of 100 ms at concurrency 50", "",
           "An I/O-bound job (`time.sleep(0.1)`), 1,000 of them added beforehand, drained by one worker process "
           "running 50 at once: this app's \"threads\" mode; plain RQ has no threads, so its way is a pool of 50 "
           "worker processes (`rq worker-pool -n 50`). The limit is 50 / 0.1 s = 500 jobs/s. jobs/s as above.", ""]
    out += contender_table(rows, commands=False)
    app = by_name(rows, "this app, threads c=50")
    out += ["", "| goal | measured | |", "|---|---|---|",
            goal_row("1,000 × 100 ms at concurrency 50 (one process, threads) ≥ 400 jobs/s",
                     spread(app["rates"]) + " jobs/s" if app else "failed", med(app["rates"]) >= 400 if app else False)]
    return out


def section_enqueue(data: dict[str, Any]) -> list[str]:
    out = ["## Adding jobs: `add` / `add_bulk` against `enqueue` / `enqueue_many`", "",
           f"One process, no worker (`enqueue_throughput.py`'s cases). Each case adds {data['jobs']:,} jobs with data "
           "`{\"a\": i, \"b\": 2}` to a flushed server after 100 warm-up jobs: this app "
           "`get_queue(\"email\").add(tests.testapp.jobs.add, ...)` (the email queue's options: 3 attempts, backoff, "
           "retention, timeout), plain RQ `Queue(\"plain\", serializer=JSONSerializer)"
           ".enqueue(\"tests.testapp.jobs.add\", ...)`, the same dotted path. Commands, round trips (socket "
           "writes: a pipeline or script call is one) and bytes are from the first round.", "",
           "| case | jobs/s, median (min–max) | Redis commands / job | round trips / job | job hash bytes (encoding) "
           "| used_memory / job |", "|---|---:|---:|---:|---:|---:|"]
    for c in data["cases"]:
        side = "this app" if c["side"] == "app" else "plain RQ"
        out.append(f"| {side}: `{c['name']}` | {spread(c['rates'])} | {c['commands']:.2f} | {c['round_trips']:.3f} | "
                   f"{c['hash_bytes']} ({c['encoding']}) | {c['memory_per_job']:.0f} |")
    rates = {c["name"]: med(c["rates"]) for c in data["cases"] if c["rates"]}
    out += ["", "| goal | measured | |", "|---|---|---|"]
    for ours, theirs, times in (("add", "enqueue", 1), ("add_bulk, batches of 100", "enqueue_many, batches of 100", 2),
                                ("add_bulk, batches of 1000", "enqueue_many, batches of 1000", 2)):
        if ours in rates and theirs in rates:
            ratio = rates[ours] / rates[theirs]
            out.append(goal_row(f"`{ours}` ≥ {times}× `{theirs}`", f"{ratio:.2f}× ({rates[ours]:,.0f} against "
                                f"{rates[theirs]:,.0f} jobs/s)", ratio >= times))
    return out


def section_latency(data: dict[str, Any]) -> list[str]:
    out = ["## Add-to-start latency on an idle worker", "",
           "One worker per side, started before and idle (blocking for work). Then, one at a time with a random "
           "gap of 5–30 ms: note the time, add a job that pushes `time.time()` onto a list as its first statement, "
           "and wait for it (`BLPOP`). Latency = that time − the time just before the add call (so it includes the "
           "add itself); *started_at* is the worker's own mark in the job hash. Sides run one after the other "
           "within a round, order rotated. Percentiles by nearest rank.", "",
           "| side | worker | samples | p50 ms | p99 ms | max ms | p50 per round (min–max) | started_at − add, "
           "p50 / p99 ms | the add call, p50 ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def f(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    for name, s in data.items():
        if not isinstance(s, dict) or "n" not in s:
            continue
        missed = f" ({s['missed']} not seen within 5 s)" if s["missed"] else ""
        out.append(f"| {name} | `{s['command']}` | {s['n']}{missed} | {f(s['p50'])} | {f(s['p99'])} | {f(s['max'])} | "
                   f"{spread(s['round_p50'], '{:.2f}')} | {f(s['started_p50'])} / {f(s['started_p99'])} | "
                   f"{f(s['add_p50'])} |")
    app = data.get("this app", {})
    out += ["", "| goal | measured | |", "|---|---|---|",
            goal_row("add → start p50 ≤ 2 ms (this app, idle worker)", f"{f(app.get('p50'))} ms",
                     app.get("p50") is not None and app["p50"] <= 2),
            goal_row("add → start p99 ≤ 5 ms (this app, idle worker)", f"{f(app.get('p99'))} ms",
                     app.get("p99") is not None and app["p99"] <= 5)]
    return out


def section_delayed(data: dict[str, Any]) -> list[str]:
    out = ["## Delayed-job lateness", "",
           f"`delayed_lateness.py`'s logic with {data['jobs']} jobs per side and round, delays drawn uniformly from "
           f"[1, {data['spread']:g}] s (a new seed each round), all added at once to an idle queue, one worker "
           "process per side: this app `manage.py rqworker email` with `add(..., delay=d)`, plain RQ `rq worker "
           "--with-scheduler` with `enqueue_in`. Lateness = `started_at` − due time; negative = started early. "
           "While jobs fall due the script sends Redis nothing. Per round p50 / p99 / max; the table gives the "
           "median over rounds and the spread.", "",
           "| side | rounds | p50 ms | p99 ms | max ms | started early (all rounds) | not run |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, runs in data["results"].items():
        alls = [r["all"] for r in runs if r["all"]]
        if not alls:
            out.append(f"| {name} | 0 | failed | | | | |")
            continue
        out.append(f"| {name} | {len(alls)} | {spread([a['p50'] for a in alls], '{:.1f}')} | "
                   f"{spread([a['p99'] for a in alls], '{:.1f}')} | {spread([a['max'] for a in alls], '{:.1f}')} | "
                   f"{sum(a['early'] for a in alls)} | {sum(r['not_run'] for r in runs)} |")
    app = [r["all"]["p99"] for r in data["results"].get("this app", []) if r["all"]]
    early = sum(r["all"]["early"] for r in data["results"].get("this app", []) if r["all"])
    out += ["", "| goal | measured | |", "|---|---|---|",
            goal_row("delayed jobs never start early, p99 lateness ≤ 50 ms (this app, worst round)",
                     f"{early} early; p99 {max(app):.1f} ms" if app else "failed",
                     early == 0 and max(app) <= 50 if app else False)]
    return out


def section_schedulers(data: dict[str, Any]) -> list[str]:
    n = data["ticks"]
    out = ["## Job scheduler tick lateness", "",
           f"One job scheduler per side firing every second, {n} ticks per round, on an idle worker (one worker "
           "process per side, started and idle before the schedule begins); sides one after the other within a "
           "round, order rotated. **This app:** `get_queue(\"bench\").upsert_job_scheduler(\"bench-tick\", "
           "benchmarks.jobs.tick, {...}, every=1)` with `manage.py rqworker bench` (processes, c=1). Its ticks are "
           f"the scheduler's own first tick after the upsert (`next` in the reply) + (k − 1) s, k = 1..{n}; each "
           "tick's run is the delayed job `repeat-bench-tick-<tick ms>`, "
           "and the tick is read from that id (checked against the job hash's `tick` field). **Plain RQ 3.0:** "
           "its `CronScheduler` run as RQ documents it, `rq cron benchmarks.plain_cron` (`cron.register(tick, "
           "queue_name=\"plain\", interval=1)`), with `rq worker --worker-class rq.worker.SimpleWorker plain`. "
           "RQ's cron keeps no intended time per run (it enqueues an interval job at once when it starts, then "
           "sleeps until its last enqueue + `interval` and enqueues again), so its ticks are taken as the "
           f"documented schedule: the first run's `enqueued_at` + k s (k = 0..{n - 1}), each run matched to the "
           "nearest tick by its own `enqueued_at`. Lateness = the time the job function started (`time.time()`, "
           "its first statement) − its tick; negative = started before its tick. *Missed*: a tick of the window "
           "with no run; *twice*: a tick with more than one run. *Drift*: how far the last tick's run is from "
           "that grid (this app: the tick in its id; RQ: its enqueue, which each time counts from the previous "
           "one). While the ticks fall due the runner sends Redis nothing. p50 / p99 / max / min by nearest "
           f"rank over the runs of all rounds together (over one round's {n} runs p99 is at or next to the max), "
           "with each "
           "round's p50 beside them, and the p50 of the worker's own mark in the job hash, `started_at` − tick "
           "(this app writes it when it takes the run, before adding the next run and calling the function; RQ when "
           "it starts the job); counts are over all rounds; drift: the median over rounds (min–max).", "",
           "| side | scheduler and worker | rounds | runs / ticks | p50 ms | p99 ms | max ms | min ms | "
           "p50 per round, ms | `started_at` − tick, p50 ms | started before their tick | ticks missed | ticks run "
           "twice | drift at the last tick, ms |", "|---|---|" + "---:|" * 12]
    commands = {"this app": "`upsert_job_scheduler(every=1)`, `manage.py rqworker bench`",
                "plain RQ": "`rq cron` (`interval=1`), `rq worker -w rq.worker.SimpleWorker`"}
    notes = []
    for name, rounds in data["results"].items():
        done = [r for r in rounds if "error" not in r and r.get("lateness_ms")]
        for i, r in enumerate(rounds, 1):
            if "error" in r:
                notes.append(f"- {name}, round {i}: failed: `{r['error'][:300]}`")
        if not done:
            out.append(f"| {name} | {commands.get(name, '')} | 0 | failed | | | | | | | | | | |")
            continue
        drift = [r["drift_ms"] for r in done if r.get("drift_ms") is not None]
        pooled = [ms for r in done for ms in r["lateness_ms"]]
        marks = [ms for r in done for ms in r.get("started_at_ms", [])]
        out.append(f"| {name} | {commands.get(name, '')} | {len(done)} | {sum(r['runs'] for r in done)} / "
                   f"{sum(r['ticks'] for r in done)} | {nearest_rank(pooled, 50):.1f} | "
                   f"{nearest_rank(pooled, 99):.1f} | {max(pooled):.1f} | {min(pooled):.1f} | "
                   f"{spread([r['p50'] for r in done], '{:.1f}')} | "
                   f"{f'{nearest_rank(marks, 50):.1f}' if marks else '–'} | {sum(r['early'] for r in done)} | "
                   f"{sum(r['missed'] for r in done)} | {sum(r['twice'] for r in done)} | "
                   f"{spread(drift, '{:.1f}')} |")
        for i, r in enumerate(rounds, 1):
            for key, what in (("early_runs", "started BEFORE their tick"), ("missed_ticks", "ticks missed"),
                              ("twice_ticks", "ticks run twice"), ("off_grid", "runs off the every-1-s grid"),
                              ("foreign", "runs not of the scheduler"), ("field_mismatch", "`tick` field ≠ id")):
                if r.get(key):
                    notes.append(f"- **{name}, round {i}: {len(r[key])} {what}:** " + "; ".join(r[key][:20]))
            if r.get("first_tick_odd"):
                notes.append(f"- **{name}, round {i}: the first tick is not within 1 s after the upsert call "
                             f"({r['first_tick_after_upsert_s']:+.3f} s).**")
    if notes:
        out += ["", *notes]
    app = [r for r in data["results"].get("this app", []) if "error" not in r and r.get("lateness_ms")]
    bad = {key: sum(r[key] for r in app) for key in ("early", "missed", "twice")}
    pooled = [ms for r in app for ms in r["lateness_ms"]]
    measured = (f"{bad['early']} early, {bad['missed']} missed, {bad['twice']} twice; p50 "
                f"{nearest_rank(pooled, 50):.1f} ms, p99 {nearest_rank(pooled, 99):.1f} ms" if app else "failed")
    out += ["", "| goal | measured | |", "|---|---|---|",
            goal_row("job scheduler runs never start before their tick, no tick missed or run twice (this app, "
                     "`every=1`, idle worker; p50 / p99 reported)", measured,
                     bool(app) and not any(bad.values()) and len(app) == len(data["results"]["this app"]))]
    return out


def section_memory(data: dict[str, Any]) -> list[str]:
    sides = data["sides"]
    out = ["## Redis memory per waiting job", "",
           f"{data['jobs']:,} jobs added one by one and left waiting, on a flushed server (after 50 warm-up jobs and "
           "a FLUSHALL, so loaded scripts are not counted): `used_memory` after − before, / N (the job hash plus its "
           "share of the queue's list and anything else the add writes). The same job and data on both sides: this "
           "app's `bench` queue (one attempt, no retention limit), plain RQ enqueueing the same dotted path.", "",
           "| side | add | bytes / job, median (min–max) | one job hash: MEMORY USAGE (encoding, fields) | "
           "other keys, MEMORY USAGE / N | waiting |", "|---|---|---:|---:|---|---:|"]
    for name, s in sides.items():
        others = ", ".join(f"`{k}` {v:.0f}" for k, v in s.get("other_keys", {}).items())
        out.append(f"| {name} | `{s['command']}` | {spread(s['per_job'])} | {s['hash_bytes']} ({s['encoding']}, "
                   f"{s['fields']} fields) | {others} | {s['waiting']:,} |")
    app, rq_side = sides.get("this app"), sides.get("plain RQ")
    if app and rq_side and app["per_job"] and rq_side["per_job"]:
        ratio = med(app["per_job"]) / med(rq_side["per_job"])
        out += ["", "| goal | measured | |", "|---|---|---|",
                goal_row("memory per waiting job ≤ 0.75× plain RQ's", f"{ratio:.2f}×", ratio <= 0.75)]
    return out


def section_dashboard(data: dict[str, Any]) -> list[str]:
    sizes = data["sizes"]
    out = ["## Admin dashboard response time by waiting jobs", "",
           f"`dashboard.py`'s method: one Redis database per size on the private server, whose `email` queue holds "
           f"that many waiting jobs (copies of one real job's hash); Django's test client, logged in as a superuser, "
           f"requests each page {data['block']} times per size and round, sizes interleaved (the first request after "
           "switching `QUEUES_REDIS` is not counted). For comparison, django-rq's own queue list (what plain RQ with "
           f"django-rq shows). Redis used {data['used_memory'] / 2**20:,.0f} MiB at the end.", "",
           f"| page | waiting jobs | median ms | p90 ms | fastest ms | median ÷ median at {sizes[0]:,} | "
           "Redis commands / request |", "|---|---:|---:|---:|---:|---:|---:|"]
    base = {row["page"]: row["median_ms"] for row in data["pages"] if row["size"] == sizes[0]}
    for row in data["pages"]:
        commands = "–" if row["commands"] is None else f"{row['commands']:.0f}"
        out.append(f"| {row['page']} | {row['size']:,} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | "
                   f"{row['min_ms']:.1f} | {row['median_ms'] / base[row['page']]:.2f} | {commands} |")
    out += ["", "| goal | measured | |", "|---|---|---|"]
    for page in ("dashboard", "JSON endpoint"):
        rows = [r for r in data["pages"] if r["page"] == page and r["size"] == sizes[-1]]
        if rows:
            ratio = rows[0]["median_ms"] / base[page]
            out.append(goal_row(f"{page}: median at {sizes[-1]:,} waiting jobs ≤ 1.5× the median at {sizes[0]:,}",
                                f"{ratio:.2f}× ({rows[0]['median_ms']:.1f} against {base[page]:.1f} ms)", ratio <= 1.5))
    return out


def section_peers(results: dict[str, Any], peers: dict[str, str]) -> list[str]:
    out = ["## Peers: BullMQ (Node, Python) and Celery", ""]
    if peers:
        out.append("Installed and measured in the tables above, in the same rounds on the same private Redis: "
                   + "; ".join(f"{name}: {how}" for name, how in peers.items()) + ". Their jobs: a no-op, and "
                   "`sleep(0.1)` (`asyncio.sleep` for BullMQ). Celery: Redis broker, no result backend.")
    else:
        out.append("No peer was installed for this run (`benchmarks/run.py --install-peers` installs them in "
                   f"{PEERS}, outside git).")
    missing = [p for p in ("bullmq-node", "bullmq-python", "celery") if p not in peers]
    if peers and missing:
        out.append(f"Not installed, so not measured: {', '.join(missing)}.")
    rows = (results.get("workers") or {}).get("contenders", []) + (results.get("sleep") or {}).get("contenders", [])
    if not rows:
        return out

    def cell(prefix: str, conc: int, sleep_rows: bool) -> str:
        pool = (results.get("sleep") if sleep_rows else results.get("workers")) or {}
        for c in pool.get("contenders", []):
            if c["name"].startswith(prefix) and (f"c={conc}" in c["name"] or f"concurrency {conc}" in c["name"]
                                                 or (conc == 1 and "solo" in c["name"])) and c["rates"]:
                return spread(c["rates"])
        return "–"

    out += ["", "| system | no-op jobs/s, concurrency 1 | no-op jobs/s, concurrency 50 | 1,000 × 100 ms at "
            "concurrency 50, jobs/s |", "|---|---:|---:|---:|",
            f"| this app (\"processes\" c=1; \"threads\" c=50) | {cell('this app, processes', 1, False)} | "
            f"{cell('this app, threads', 50, False)} | {cell('this app, threads', 50, True)} |",
            f"| plain RQ (SimpleWorker; worker-pool of 50) | "
            f"{_first_rate(results, 'workers', 'plain RQ, SimpleWorker')} | – | "
            f"{_first_rate(results, 'sleep', 'plain RQ, worker-pool')} |"]
    for prefix in ("BullMQ (Node)", "BullMQ (Python)", "Celery"):
        if any(c["name"].startswith(prefix) for c in rows):
            out.append(f"| {prefix} | {cell(prefix, 1, False)} | {cell(prefix, 50, False)} | "
                       f"{cell(prefix, 50, True)} |")
    return out


def _first_rate(results: dict[str, Any], bench: str, prefix: str) -> str:
    for c in (results.get(bench) or {}).get("contenders", []):
        if c["name"].startswith(prefix) and c["rates"]:
            return spread(c["rates"])
    return "–"


SECTIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "workers": section_workers, "sleep": section_sleep, "enqueue": section_enqueue, "latency": section_latency,
    "delayed": section_delayed, "schedulers": section_schedulers, "memory": section_memory,
    "dashboard": section_dashboard,
}
DOC_ORDER = ("workers", "sleep", "peers", "enqueue", "latency", "delayed", "schedulers", "memory", "dashboard")
INTRO = """# Benchmarks: this app next to plain RQ

Produced by [`benchmarks/run.py`](../benchmarks/README.md), which runs every benchmark of the project beside plain
RQ 3.0 (and BullMQ and Celery when installed) in one run on a private Redis server of its own (a free loopback
port; no other server is ever used), and rewrites the sections of this page between the `bench:` markers: each
section says the commit, machine, load and exact command it came from (`--only` rewrites only those sections).
Medians over rounds, with the spread (min–max) in brackets. The goals are marked met / not met.
"""


def render(name: str, data: dict[str, Any], meta: dict[str, Any], results: dict[str, Any],
           peers: dict[str, str]) -> str:
    if "error" in data:
        body = [f"## {name}", "", f"This benchmark failed: `{data['error'][:500]}`"]
    elif name == "peers":
        body = section_peers(results, peers)
    else:
        body = SECTIONS[name](data)
    body.insert(2, provenance(meta, data.get("elapsed_s")) + "\n")
    return "\n".join(body)


MARK = re.compile(r"<!-- bench:(\w+) -->\n.*?<!-- /bench:\1 -->\n", re.S)
SUMMARY = re.compile(r"<!-- summary -->\n.*?<!-- /summary -->\n", re.S)


def insert_section(text: str, name: str, block: str, found: set[str]) -> str:
    """``text`` with the new section ``block`` where ``DOC_ORDER`` puts it: before the next section the page has,
    else after the previous one, else right after the goals."""
    if name in DOC_ORDER:
        i = DOC_ORDER.index(name)
        after = next((n for n in DOC_ORDER[i + 1:] if n in found), None)
        if after is not None:
            return text.replace(f"<!-- bench:{after} -->\n", f"{block}\n<!-- bench:{after} -->\n", 1)
        before = next((n for n in reversed(DOC_ORDER[:i]) if n in found), None)
        if before is not None:
            return text.replace(f"<!-- /bench:{before} -->\n", f"<!-- /bench:{before} -->\n\n{block}", 1)
    return text.replace("<!-- /summary -->\n", f"<!-- /summary -->\n\n{block}", 1)


def write_doc(sections: dict[str, str]) -> None:
    """Replace the measured sections of docs/benchmarks.md (create the page's frame if it has none)."""
    text = DOC.read_text() if DOC.exists() else ""
    if "<!-- summary -->" not in text:
        frame = [INTRO, "<!-- summary -->\n<!-- /summary -->\n"]
        frame += [f"<!-- bench:{n} -->\n## {n}\n\nNot measured yet: `.venv/bin/python benchmarks/run.py --only {n}`.\n"
                  f"<!-- /bench:{n} -->\n" for n in DOC_ORDER if n != "peers"]
        frame.append("<!-- bench:peers -->\n## Peers\n\nNot measured yet.\n<!-- /bench:peers -->\n")
        old = text.split("\n", 1)[1] if text.startswith("# ") else text
        text = "\n".join(frame) + ("\n## Earlier measurements (kept as they were)\n" + old if old.strip() else "")
    found = set(MARK.findall(text))
    for name, body in sections.items():
        block = f"<!-- bench:{name} -->\n{body.rstrip()}\n<!-- /bench:{name} -->\n"
        if name in found:
            text = MARK.sub(lambda m, n=name, blk=block: blk if m.group(1) == n else m.group(0), text)
        else:
            text = insert_section(text, name, block, found)
            found.add(name)
    goals = []
    for m in MARK.finditer(text):
        goals += [line.replace(" <!-- goal -->", "").replace("| ", f"| `{m.group(1)}`: ", 1)
                  for line in m.group(0).splitlines() if line.endswith("<!-- goal -->")]
    summary = ["<!-- summary -->", "## Goals", "", "Collected from the sections below (each from its own run):", "",
               "| goal | measured | |", "|---|---|---|", *goals, "<!-- /summary -->", ""]
    text = SUMMARY.sub(lambda _m: "\n".join(summary), text, count=1)
    DOC.write_text(text)


# --- main -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a fast check (a few minutes)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per benchmark (default 3)")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run, of: {', '.join(NAMES)}")
    parser.add_argument("--install-peers", action="store_true",
                        help=f"install BullMQ (npm, PyPI) and Celery under {PEERS} first (outside git)")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    given = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(given)
    only = NAMES if not args.only else tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = set(only) - set(NAMES)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))} (known: {', '.join(NAMES)})")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1..10")
    if args.install_peers:
        install_peers()
    sizes = SIZES["quick" if args.quick else "full"]

    load = load_average()
    began = time.monotonic()
    results: dict[str, Any] = {}
    saved_db = os.environ.get("DATABASE_URL")
    peers: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="queues-bench-db-") as db_dir:
        os.environ["DATABASE_URL"] = f"sqlite:///{db_dir}/bench.sqlite3"
        try:
            with private_redis() as (server, directory):
                from benchmarks._common import setup_django

                setup_django()
                bench = Bench(server.url, directory, sizes, args.rounds)
                peers = bench.peers
                log(f"private Redis {server.url}; peers: {', '.join(peers) or 'none installed'}")
                for name in BENCHMARKS:
                    if name not in only:
                        continue
                    log(f"{name} ...")
                    started = time.monotonic()
                    try:
                        results[name] = BENCHMARKS[name](bench)
                    except Exception as e:  # noqa: BLE001 - one benchmark failing must not lose the others
                        import traceback

                        traceback.print_exc()
                        results[name] = {"error": f"{type(e).__name__}: {e}"}
                    results[name]["elapsed_s"] = time.monotonic() - started
                    with contextlib.suppress(Exception):
                        bench.client.flushall()
                bench.client.close()
        finally:
            if saved_db is None:
                os.environ.pop("DATABASE_URL", None)
            else:
                os.environ["DATABASE_URL"] = saved_db
    elapsed = time.monotonic() - began

    info = machine()
    meta = {**info, "load": load, "command": shlex.join([".venv/bin/python", "benchmarks/run.py", *given])}
    sections = {name: render(name, results[name], meta, results, peers) for name in NAMES if name in results}
    if "workers" in results or "sleep" in results:
        sections["peers"] = render("peers", {}, meta, results, peers)
    for name in DOC_ORDER:
        if name in sections:
            print(sections[name] + "\n")
    print(f"# {elapsed:.0f} s in all")
    if not args.no_write:
        write_doc(sections)
        log(f"wrote {DOC.relative_to(ROOT)}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "peers": peers, "sizes": {k: v for k, v in sizes.items()},
                                         "rounds": args.rounds, "elapsed_s": elapsed, "results": results},
                                        indent=1, default=str))
    failed = [n for n, r in results.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
