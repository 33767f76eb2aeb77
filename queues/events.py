"""The event stream of each queue, and :class:`QueueEvents`, which follows it from any process.

Every queue has a capped Redis stream ``rq:events:<queue>`` (``XADD MAXLEN ~ QUEUES_EVENTS_MAX_LENGTH``,
default 10,000 entries; 0 publishes nothing). The job lifecycle is written by the same Lua script or
pipeline as the state change it reports, so it costs no round trip of its own, and a failure to publish
never fails a job. The events, with their fields (BullMQ's names, in snake case):

==============  ===============================================================================
added           job_id, name
waiting         job_id (prev "delayed" when a delayed job or a retry fell due)
delayed         job_id, due (epoch seconds)
prioritized     job_id, priority
active          job_id, prev ("waiting" or "prioritized")
progress        job_id, data (JSON: a number or an object)
completed       job_id, return_value (JSON), prev ("active")
failed          job_id, failed_reason, attempts_made, prev ("active")
retrying        job_id, attempts_made, due (epoch seconds)
stalled         job_id, name, stalled_count, failed (1 when it stalled once too often)
removed         job_id, prev (the state it was removed from)
paused/resumed  (none)
drained         the queue has no waiting job left (count, when ``Queue.drain()`` removed jobs)
cleaned         count, state
==============  ===============================================================================
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis

from .conf import get_config, get_definition
from .connection import EVENTS as EVENTS_ROLE
from .connection import get_connection
from .scripts import PUBLISH, QueueKeys

logger = logging.getLogger("queues.events")

Event = dict[str, Any]
Handler = Callable[[Event], Any]
JSON_FIELDS = frozenset({"data", "return_value"})
INT_FIELDS = frozenset({"attempts_made", "priority", "stalled_count", "count", "failed"})
FLOAT_FIELDS = frozenset({"due"})
EVENTS = ("added", "waiting", "delayed", "prioritized", "active", "progress", "completed", "failed", "retrying",
          "stalled", "removed", "paused", "resumed", "drained", "cleaned", "scheduler-upserted", "scheduler-removed")


def publish(client: Any, queue: str, event: str, **fields: Any) -> None:
    """Append ``event`` with ``fields`` to the queue's stream (``client`` may be a pipeline).

    Does nothing when ``QUEUES_EVENTS_MAX_LENGTH`` is 0. Never raises into a job or a worker: the script
    swallows a Redis-side error (say, the key holds another type), and a client-side one is logged.
    """
    max_length = get_config().events_max_length
    if not max_length:
        return
    args: list[Any] = [max_length, "event", event]
    for key, value in fields.items():
        args += [key, "" if value is None else str(value)]
    try:
        client.eval(PUBLISH, 1, QueueKeys.of(queue).events, *args)
    except Exception:  # a lost event must not fail the state change it reports
        logger.exception("could not publish %s event on queue %s", event, queue)


def decode(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    """A stream entry as an event dict: ``id``, ``event`` and its fields, JSON and numbers decoded."""
    event: Event = {"id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id}
    for raw_key, raw_value in fields.items():
        key, value = raw_key.decode(), raw_value.decode()
        if key in JSON_FIELDS and value:
            try:
                event[key] = json.loads(value)
            except ValueError:
                event[key] = value
        elif key in INT_FIELDS and value.lstrip("-").isdigit():
            event[key] = int(value)
        elif key in FLOAT_FIELDS and value:
            event[key] = float(value)
        else:
            event[key] = value
    return event


def read(client: Any, queue: str, count: int = 100) -> list[Event]:
    """The newest ``count`` events of ``queue``, oldest first."""
    entries = client.xrevrange(QueueKeys.of(queue).events, count=count)
    return [decode(entry_id, fields) for entry_id, fields in reversed(entries)]


class QueueEvents:
    """Follow a queue's events from any process (BullMQ's ``QueueEvents``)::

        events = QueueEvents("email")
        events.on("completed", lambda event: print(event["job_id"], event["return_value"]))
        events.on("failed", lambda event: print(event["job_id"], event["failed_reason"]))
        events.start()          # in a daemon thread; or events.run() to block here
        ...
        events.close()

    ``last_event_id`` is where reading starts: ``"$"`` (the default) means the events published from now
    on, ``"0"`` everything still in the stream, or an event's ``id`` to resume after it. A listener that
    keeps ``events.last_event_id`` and starts again from it misses nothing the stream still holds (it
    holds the last ``QUEUES_EVENTS_MAX_LENGTH`` events). Handlers run one at a time, in stream order; one
    that raises is logged and the others still run. A lost Redis connection is retried every second.

    Raises:
        InvalidQueue: ``queue`` is not defined in ``QUEUES``.
    """

    def __init__(self, queue: str, *, last_event_id: str = "$", connection: redis.Redis | None = None,
                 block: float = 1.0) -> None:
        get_definition(queue)
        self.queue = queue
        self.key = QueueKeys.of(queue).events
        self.connection = connection if connection is not None else get_connection(EVENTS_ROLE)
        self.block_ms = max(1, int(block * 1000))  # also how soon close() is noticed
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if last_event_id == "$":  # "from now": pin it to the stream's current end, so nothing falls between reads
            newest = self.connection.xrevrange(self.key, count=1)
            last_event_id = newest[0][0].decode() if newest else "0-0"
        self.last_event_id = last_event_id

    def __repr__(self) -> str:
        return f"<QueueEvents {self.queue!r} after {self.last_event_id}>"

    def on(self, event: str, handler: Handler) -> Handler:
        """Call ``handler(event_dict)`` for every ``event`` (a name from ``EVENTS``, or ``"*"`` for all).

        Returns the handler (to pass to :meth:`off` later).

        Raises:
            ValueError: ``event`` is not an event this app publishes.
        """
        if event != "*" and event not in EVENTS:
            raise ValueError(f"Unknown event {event!r}: use one of {', '.join(EVENTS)}, or '*' for all.")
        self._handlers[event].append(handler)
        return handler

    def off(self, event: str, handler: Handler) -> None:
        """Stop calling ``handler`` for ``event``."""
        if handler in self._handlers.get(event, []):
            self._handlers[event].remove(handler)

    def read(self, count: int = 100, block: float | None = None) -> list[Event]:
        """The next events after ``last_event_id`` (up to ``count``), advancing it; wait up to ``block`` s."""
        response = self.connection.xread({self.key: self.last_event_id}, count=count,
                                         block=None if block is None else max(1, int(block * 1000)))
        events = [decode(entry_id, fields) for _key, entries in response or [] for entry_id, fields in entries]
        if events:
            self.last_event_id = events[-1]["id"]
        return events

    def run(self) -> None:
        """Read and dispatch events until :meth:`close` is called."""
        while not self._closed.is_set():
            try:
                events = self.read(block=self.block_ms / 1000)
            except redis.ConnectionError:
                logger.warning("queue %s events: Redis connection lost; reading again in 1 s from %s", self.queue,
                               self.last_event_id)
                self._closed.wait(1)
                continue
            for event in events:
                self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        for handler in [*self._handlers.get(event["event"], ()), *self._handlers.get("*", ())]:
            try:
                handler(event)
            except Exception:
                logger.exception("queue %s events: handler %r failed on %s event %s", self.queue, handler,
                                 event["event"], event["id"])

    def start(self) -> QueueEvents:
        """Run :meth:`run` in a daemon thread; returns ``self``."""
        if self._thread is None or not self._thread.is_alive():
            self._closed.clear()
            self._thread = threading.Thread(target=self.run, name=f"QueueEvents({self.queue})", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop reading (within ``block`` seconds) and wait for the thread, if any."""
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.block_ms / 1000 + 5)
        self._thread = None

    def __enter__(self) -> QueueEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
