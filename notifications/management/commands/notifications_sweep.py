"""``manage.py notifications_sweep``: enqueue the notifications whose enqueue failed (see notifications.outbox)."""

from __future__ import annotations

import argparse
import logging
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from notifications import outbox


def positive_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds greater than 0")
    return number


def non_negative_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds (0 or more)")
    return number


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number greater than 0")
    return int(value)


class Command(BaseCommand):
    help = ("Enqueue notifications left pending because Redis was unreachable when they were created. "
            "Each keeps its job id, so a notification is never enqueued twice.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--every", type=positive_number, default=None, metavar="SECONDS",
                            help="sweep again every SECONDS until stopped (default: once)")
        parser.add_argument("--limit", type=positive_int, default=outbox.SWEEP_LIMIT,
                            help="rows per sweep (default: %(default)r)")
        parser.add_argument("--grace", type=non_negative_number, default=outbox.SWEEP_GRACE.total_seconds(),
                            metavar="SECONDS",
                            help="leave rows younger than this to the request that made them (default: %(default)r)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be enqueued, enqueue nothing")
        parser.add_argument("--lost", action="store_true",
                            help="also enqueue again the queued notifications whose job Redis no longer has "
                                 "(reads every queued row: for a periodic sweep)")

    def handle(self, *args: Any, every: float | None, limit: int, grace: float, dry_run: bool, lost: bool,
               verbosity: int, **options: Any) -> None:
        logging.getLogger("notifications").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
        while True:
            try:
                self.sweep(limit=limit, grace=timedelta(seconds=grace), dry_run=dry_run, lost=lost, verbosity=verbosity)
            except outbox.REDIS_DOWN as e:
                message = f"Redis is unreachable ({type(e).__name__}): pending notifications stay pending."
                if every is None:
                    raise CommandError(message, returncode=2) from e
                self.stderr.write(message)
            if every is None:
                return
            try:
                time.sleep(every)
            except KeyboardInterrupt:
                return

    def sweep(self, *, limit: int, grace: timedelta, dry_run: bool, lost: bool, verbosity: int) -> None:
        # A backlog larger than one batch is swept in batches, until a batch comes back short.
        while True:
            ids = outbox.sweep(limit=limit, grace=grace, dry_run=dry_run, lost=lost)
            if verbosity > 0 and (ids or verbosity > 1):
                verb = "would enqueue" if dry_run else "enqueued"
                what = "pending or lost" if lost else "pending"
                self.stdout.write(f"{verb} {len(ids)} {what} notification(s)" + (f": {ids}" if ids else ""))
            if len(ids) < limit or dry_run:
                return
