"""A listener process for the event tests: print every event of a queue as one JSON line, as it comes.

    python tests/listen_events.py QUEUE [--from ID]

It runs ``queues.QueueEvents(QUEUE, last_event_id=ID).on("*", ...)`` in its thread (``start()``), prints
``{"listening": ID}`` once that is done, then one line per event (the event dict: ``id``, ``event`` and its fields),
flushed at once. On SIGTERM or SIGINT it calls ``close()`` and prints ``{"closed": <last_event_id>}``, then exits 0.
Django is set up with ``DJANGO_SETTINGS_MODULE`` (default ``tests.settings``) and reaches the Redis of
``REDIS_URL``, as the test session's worker processes do.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python tests/listen_events.py`: sys.path[0] is tests/, not the project
    sys.path.insert(0, str(ROOT))


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("queue")
    parser.add_argument("--from", dest="last_event_id", default="$",
                        help="the id to read after (default: %(default)r, new events only)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from queues import QueueEvents

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    listener = QueueEvents(args.queue, last_event_id=args.last_event_id)
    listener.on("*", emit)
    listener.start()
    emit({"listening": args.last_event_id})
    stop.wait()
    listener.close()
    emit({"closed": listener.last_event_id})
    return 0


if __name__ == "__main__":
    sys.exit(main())
