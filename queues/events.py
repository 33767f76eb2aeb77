"""The event stream of each queue: a capped Redis stream ``rq:events:<queue>`` other processes can read.

This first part publishes what the worker controls produce (``paused``, ``resumed``, ``stalled``); the
events issue adds the job lifecycle, the ``QueueEvents`` listener and Django signals on the same stream.
"""

from __future__ import annotations

import logging
from typing import Any

from .scripts import QueueKeys

logger = logging.getLogger("queues.events")

MAX_LENGTH = 10_000  # approximate cap (XADD MAXLEN ~): memory stays bounded


def publish(client: Any, queue: str, event: str, **fields: Any) -> None:
    """Append ``event`` with ``fields`` to the queue's stream (``client`` may be a pipeline).

    Never raises into a job or a worker: a failure to publish is logged.
    """
    entry = {"event": event, **{key: "" if value is None else str(value) for key, value in fields.items()}}
    try:
        client.xadd(QueueKeys.of(queue).events, entry, maxlen=MAX_LENGTH, approximate=True)
    except Exception:  # a lost event must not fail the state change it reports
        logger.exception("could not publish %s event on queue %s", event, queue)


def read(client: Any, queue: str, count: int = 100) -> list[dict[str, str]]:
    """The newest ``count`` events of ``queue``, oldest first, each with its stream ``id``."""
    entries = client.xrevrange(QueueKeys.of(queue).events, count=count)
    return [{"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
            for entry_id, fields in reversed(entries)]
