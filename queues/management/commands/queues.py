"""``manage.py queues <sub-command>``: look after the queues from a shell.

    status [--json] [--watch [SECONDS]]        every queue in QUEUES: counts, paused, limiter, workers
    retry QUEUE [--job ID] [--state STATE]      one job, or every failed (completed) job
    clean QUEUE [--state S] [--grace SECONDS] [--limit N]
    pause QUEUE | resume QUEUE
    drain QUEUE [--delayed]
    obliterate QUEUE [--force]
    events QUEUE [--from ID] [--json]           follow the queue's events, one line each, until Ctrl-C
    schedulers [QUEUE] [--json]                 the job schedulers: id, job, rule, next run, runs so far
    schedulers [QUEUE] --remove ID | --run ID   remove one (its pending run too), or add one run of it now

Destructive sub-commands ask for confirmation (y/N) unless ``--yes``. Exit status: 0 done, 1 refused (answered
no, queue busy, unknown queue or job), 2 Redis cannot be reached (the message names host:port, never a password).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis
import rq
from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool
from redis.retry import Retry

from queues.conf import get_config
from queues.connection import build_client, connection_kwargs, where
from queues.events import QueueEvents
from queues.exceptions import InvalidJobOptions, InvalidScheduler, QueueBusy
from queues.maintenance import CLEANABLE, RETRYABLE
from queues.queue import Queue

REFUSED, UNREACHABLE = 1, 2
CONNECT_TIMEOUT = 2.0  # seconds, unless QUEUES_REDIS sets SOCKET_CONNECT_TIMEOUT: a command fails fast
COUNTS = ("waiting", "prioritized", "delayed", "active", "completed", "failed", "paused", "rate_limited")


def seconds(text: str) -> float:
    """argparse type: a number of seconds ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be 0 or more")
    return value


def interval(text: str) -> float:
    """argparse type: a refresh interval, at least 0.1 s."""
    value = seconds(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError(f"{text!r}: refresh at most ten times a second (0.1 or more)")
    return value


def whole(text: str) -> int:
    """argparse type: a whole number ≥ 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 0")
    return int(text)


def connect(config: dict[str, Any]) -> redis.Redis:
    """A client that does not retry, its connection checked with a PING.

    Raises:
        CommandError: (exit 2) Redis cannot be reached or refuses the credentials.
    """
    if config.get("SENTINELS"):
        client = build_client(config, retries=0, timeout=2 * CONNECT_TIMEOUT)
    else:
        kwargs = connection_kwargs(config)
        # This app's connection class logs every connection and error; a command reports its own, in one line.
        kwargs["connection_class"] = next(cls for cls in kwargs["connection_class"].__mro__
                                          if cls.__module__.startswith("redis."))
        if "SOCKET_CONNECT_TIMEOUT" not in config:
            kwargs["socket_connect_timeout"] = CONNECT_TIMEOUT
        kwargs["retry"] = Retry(NoBackoff(), 0)
        client = redis.Redis(connection_pool=ConnectionPool(**kwargs))
    try:
        client.ping()
    except redis.RedisError as e:
        raise CommandError(f"Redis cannot be reached at {where(config)}: {e} (check REDIS_URL, or REDIS_HOST and "
                           "REDIS_PORT, and that the server runs).", returncode=UNREACHABLE) from None
    return client


class Command(BaseCommand):
    help = "Look after the queues: status, retry, clean, pause, resume, drain, obliterate, events, schedulers."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="sub-command", parser_class=CommandParser)
        status = sub.add_parser("status", help="counts, pause, limiter, concurrency and workers of every queue")
        status.add_argument("--json", action="store_true", help="print {queue: get_job_counts()} as JSON")
        status.add_argument("--watch", nargs="?", const=2.0, type=interval, metavar="SECONDS",
                            help="refresh every SECONDS (default 2) until Ctrl-C")

        retry = self._queue_parser(sub, "retry", "move failed jobs back to waiting (all of them unless --job)")
        retry.add_argument("--job", metavar="ID", help="retry this job only (failed or completed)")
        retry.add_argument("--state", choices=RETRYABLE, default="failed", help="jobs to retry (default: %(default)s)")
        clean = self._queue_parser(sub, "clean", "remove jobs of a state older than a grace period")
        clean.add_argument("--state", choices=CLEANABLE, default="completed", help="(default: %(default)s)")
        clean.add_argument("--grace", type=seconds, default=0.0, metavar="SECONDS",
                           help="only jobs older than this (default: %(default)s)")
        clean.add_argument("--limit", type=whole, default=1000, help="at most this many, 0 for all "
                                                                     "(default: %(default)s)")
        self._queue_parser(sub, "pause", "stop workers taking the queue's jobs (running jobs finish)", yes=False)
        self._queue_parser(sub, "resume", "let workers take the queue's jobs again", yes=False)
        drain = self._queue_parser(sub, "drain", "remove every waiting and prioritized job")
        drain.add_argument("--delayed", action="store_true", help="remove delayed jobs too")
        obliterate = self._queue_parser(sub, "obliterate", "remove the queue with all its jobs and keys")
        obliterate.add_argument("--force", action="store_true", help="even while jobs are active")
        events = self._queue_parser(sub, "events", "print the queue's events as they happen, until Ctrl-C", yes=False)
        events.add_argument("--from", dest="from_id", default="$", metavar="ID",
                            help="start after this event id ('0': all the stream holds; default: new events only)")
        events.add_argument("--json", action="store_true", help="one JSON object per line")
        schedulers = sub.add_parser("schedulers", help="list the job schedulers (all queues, or QUEUE's)",
                                    description="List the job schedulers, or remove one, or run one now.")
        schedulers.add_argument("queue", nargs="?", help="only this queue's (a name from QUEUES)")
        act = schedulers.add_mutually_exclusive_group()
        act.add_argument("--remove", metavar="ID", help="remove this scheduler and its pending run")
        act.add_argument("--run", metavar="ID", help="add one run of this scheduler now (its rhythm is unchanged)")
        schedulers.add_argument("--json", action="store_true", help="print them as JSON")

    @staticmethod
    def _queue_parser(sub: Any, name: str, help_text: str, *, yes: bool = True) -> CommandParser:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("queue", help="a queue name from QUEUES")
        if yes:
            parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        config = get_config()
        if action not in ("status", "schedulers") or options.get("queue"):
            self._check_queue(options["queue"], config)
        client = connect(config.redis)
        try:
            getattr(self, f"do_{action}")(client, options)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise CommandError(f"Lost the connection to Redis at {where(config.redis)}: {e}",
                               returncode=UNREACHABLE) from None
        except (QueueBusy, InvalidJobOptions, InvalidScheduler) as e:
            raise CommandError(str(e), returncode=REFUSED) from None
        finally:
            client.close()

    @staticmethod
    def _check_queue(name: str, config: Any) -> None:
        if name not in config.queues:
            raise CommandError(f"Unknown queue {name!r}: QUEUES defines {', '.join(config.queues) or 'none'}.",
                               returncode=REFUSED)

    def _confirm(self, options: dict[str, Any], question: str) -> None:
        """Ask ``question`` (y/N) unless --yes.

        Raises:
            CommandError: (exit 1) the answer is not yes, or there is no answer (stdin closed).
        """
        if options.get("yes"):
            return
        self.stdout.write(f"{question} [y/N] ", ending="")
        self.stdout.flush()
        try:
            answer = input()
        except EOFError:
            answer = ""
        if not sys.stdin.isatty():  # the answer was not echoed: end the prompt's line
            self.stdout.write("")
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("Nothing done (not confirmed; pass --yes to skip the question).", returncode=REFUSED)

    # --- sub-commands -------------------------------------------------------------------------------------------

    def do_status(self, client: redis.Redis, options: dict[str, Any]) -> None:
        queues = [Queue(name, connection=client) for name in get_config().queues]
        if options["watch"] is None:
            self._print_status(queues, as_json=options["json"], clear=False)
            return
        stop = threading.Event()
        with _on_signals(stop.set):
            while True:
                self._print_status(queues, as_json=options["json"], clear=self.stdout.isatty())
                if stop.wait(options["watch"]):
                    return

    def _print_status(self, queues: list[Queue], *, as_json: bool, clear: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({queue.name: queue.get_job_counts() for queue in queues}))
        else:
            if clear:
                self.stdout.write("\x1b[H\x1b[2J", ending="")
            self.stdout.write(self._table(queues))
        self.stdout.flush()

    def _table(self, queues: list[Queue]) -> str:
        head = ["queue", *[c.replace("_", "-") for c in COUNTS if c != "paused"], "paused", "limiter",
                "concurrency", "workers"]
        rows = [head]
        for queue in queues:
            counts = queue.get_job_counts()
            limiter = queue.definition.limiter
            rows.append([queue.name, *[str(counts[c]) for c in COUNTS if c != "paused"],
                         "yes" if queue.is_paused() else "no",
                         f"{limiter.max} / {limiter.duration:g} s" if limiter else "-",
                         str(queue.definition.concurrency), str(len(rq.Worker.all(queue=queue.rq)))])
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) if i == 0 or not cell[:1].isdigit() else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return "\n".join(lines) + f"\n({len(queues)} queues at {stamp})"

    def do_retry(self, client: redis.Redis, options: dict[str, Any]) -> None:
        queue = Queue(options["queue"], connection=client)
        if options["job"]:
            handle = queue.get_job(options["job"])
            if handle is None or handle.queue_name != queue.name:
                raise CommandError(f"Queue {queue.name!r} has no job {options['job']!r}.", returncode=REFUSED)
            if not handle.retry():
                raise CommandError(f"Job {handle.id} is {handle.get_state()}: only a failed or completed job can be "
                                   "retried.", returncode=REFUSED)
            self.stdout.write(f"Job {handle.id} is waiting again on {queue.name!r}.")
            return
        state = options["state"]
        count = queue.get_job_counts()[state]
        self._confirm(options, f"Retry all {count} {state} jobs of {queue.name!r}?")
        self.stdout.write(f"Retried {queue.retry_jobs(state=state)} {state} jobs of {queue.name!r}.")

    def do_clean(self, client: redis.Redis, options: dict[str, Any]) -> None:
        queue = Queue(options["queue"], connection=client)
        state, grace, limit = options["state"], options["grace"], options["limit"]
        self._confirm(options, f"Remove {'all' if not limit else f'up to {limit}'} {state} jobs older than "
                               f"{grace:g} s from {queue.name!r}?")
        removed = queue.clean(grace, limit=limit, state=state)
        self.stdout.write(f"Removed {len(removed)} {state} jobs from {queue.name!r}.")

    def do_pause(self, client: redis.Redis, options: dict[str, Any]) -> None:
        Queue(options["queue"], connection=client).pause()
        self.stdout.write(f"Paused {options['queue']!r}: workers take none of its jobs until it is resumed.")

    def do_resume(self, client: redis.Redis, options: dict[str, Any]) -> None:
        Queue(options["queue"], connection=client).resume()
        self.stdout.write(f"Resumed {options['queue']!r}.")

    def do_drain(self, client: redis.Redis, options: dict[str, Any]) -> None:
        queue = Queue(options["queue"], connection=client)
        counts = queue.get_job_counts()
        what = "waiting, prioritized and delayed" if options["delayed"] else "waiting and prioritized"
        total = counts["waiting"] + counts["prioritized"] + (counts["delayed"] if options["delayed"] else 0)
        self._confirm(options, f"Remove the {total} {what} jobs of {queue.name!r}?")
        self.stdout.write(f"Removed {queue.drain(include_delayed=options['delayed'])} jobs from {queue.name!r}.")

    def do_obliterate(self, client: redis.Redis, options: dict[str, Any]) -> None:
        queue = Queue(options["queue"], connection=client)
        total = sum(count for name, count in queue.get_job_counts().items() if name not in ("paused", "rate_limited"))
        self._confirm(options, f"Obliterate {queue.name!r}: remove all its {total} jobs and every key of it?")
        removed = queue.obliterate(force=options["force"])
        self.stdout.write(f"Obliterated {queue.name!r}: {removed} jobs removed.")

    def do_events(self, client: redis.Redis, options: dict[str, Any]) -> None:
        listener = QueueEvents(options["queue"], last_event_id=options["from_id"], connection=client)
        listener.on("*", self._event_printer(as_json=options["json"]))
        with _on_signals(listener.close):  # run() returns within a second of it
            listener.run()

    def do_schedulers(self, client: redis.Redis, options: dict[str, Any]) -> None:
        names = [options["queue"]] if options["queue"] else list(get_config().queues)
        queues = [Queue(name, connection=client) for name in names]
        target = options["remove"] or options["run"]
        if target:
            holders = [queue for queue in queues if queue.get_job_scheduler(target) is not None]
            if not holders:
                raise CommandError(f"No job scheduler {target!r} in {', '.join(map(repr, names))}.", returncode=REFUSED)
            if len(holders) > 1:
                raise CommandError(f"Job scheduler {target!r} exists in {', '.join(q.name for q in holders)}: name the "
                                   "queue (`queues schedulers QUEUE --remove ID`).", returncode=REFUSED)
            queue = holders[0]
            if options["remove"]:
                queue.remove_job_scheduler(target)
                self.stdout.write(f"Removed job scheduler {target!r} of {queue.name!r} and its pending run.")
            else:
                self.stdout.write(f"Added job {queue.run_job_scheduler_now(target)} to {queue.name!r} "
                                  f"(a run of {target!r} now).")
            return
        found = [item for queue in queues for item in queue.get_job_schedulers()]
        if options["json"]:
            self.stdout.write(json.dumps(found, default=str))
            return
        if not found:
            self.stdout.write("No job schedulers (QUEUES_JOB_SCHEDULERS, or Queue.upsert_job_scheduler()).")
            return
        rows = [["queue", "id", "job", "rule", "next run", "runs", "last run", "from"]]
        for item in found:
            rows.append([item["queue"], item["id"], item["job"], item["rule"], _when(item["next"]) if not item["ended"]
                         else "ended", str(item["iteration_count"]) + (f" / {item['limit']}" if item["limit"] else ""),
                         _when(item["last"]), item["origin"]])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        self.stdout.write("\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                                    for row in rows))

    def _event_printer(self, *, as_json: bool) -> Callable[[dict[str, Any]], None]:
        def show(event: dict[str, Any]) -> None:
            if as_json:
                self.stdout.write(json.dumps(event, default=str))
            else:
                millis = int(event["id"].split("-")[0])
                at = datetime.fromtimestamp(millis / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
                fields = " ".join(f"{key}={_text(value)}" for key, value in event.items() if key not in ("id", "event"))
                self.stdout.write(f"{at} {event['id']} {event['event']} {fields}".rstrip())
            self.stdout.flush()

        return show


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@contextmanager
def _on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on SIGINT (Ctrl-C) or SIGTERM meanwhile: the long-running sub-commands end then, exit 0."""

    def handler(_signum: int, _frame: Any) -> None:
        stop()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)
