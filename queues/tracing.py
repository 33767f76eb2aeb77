"""OpenTelemetry tracing of jobs (the optional extra ``queues[otel]``), a no-op without ``opentelemetry-api``.

- Each add (``Queue.add``, ``add_bulk``, a task's ``enqueue``) is a PRODUCER span ``send <queue>``; the context of
  the trace is carried in the job (its hash field ``otel``: the W3C ``traceparent``, or the propagator's carrier
  as JSON when it holds more), written with the job.
- Each run is a CONSUMER span ``process <queue>``, a child of the context the job carries, around the job function;
  an exception is recorded on it with an ERROR status (the run's retry or failure follows as usual).

Attributes follow OpenTelemetry's messaging semantic conventions: ``messaging.system`` (``"rq"``),
``messaging.operation.type`` and ``.name``, ``messaging.destination.name`` (the queue), ``messaging.message.id``
(the job id; on a bulk add, ``messaging.batch.message_count`` instead), and ``queues.job.name`` and
``queues.job.attempt`` (1 for the first run).

Spans are made by whatever tracer provider the process configured (the SDK and an exporter, or an
auto-instrumentation agent); with the API alone they cost a non-recording span each, and nothing is written into
the job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the extra is not installed: tracing is off
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .queue import NewJob

ENABLED = trace is not None
FIELD = b"otel"
SYSTEM = "rq"


def _tracer() -> Any:
    return trace.get_tracer("queues")


@contextmanager
def sending(queue: str, jobs: Sequence[NewJob]) -> Iterator[None]:
    """The PRODUCER span of adding ``jobs`` to ``queue``; puts its context into each job's hash fields."""
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM, "messaging.operation.type": "send", "messaging.operation.name": "add",
        "messaging.destination.name": queue,
    }
    if len(jobs) == 1:
        attributes["messaging.message.id"] = jobs[0].id
        attributes["queues.job.name"] = jobs[0].name
    else:
        attributes["messaging.batch.message_count"] = len(jobs)
    with _tracer().start_as_current_span(f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes) as span:
        if span.is_recording():
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            if carrier:
                value = (carrier["traceparent"] if carrier.keys() == {"traceparent"}
                         else json.dumps(carrier, separators=(",", ":"))).encode()
                for new in jobs:
                    new.fields[FIELD] = value
        yield


def run(queue: str, job_id: str, name: str, attempt: int, carried: bytes | None, function: Callable[..., Any],
        args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``function`` in the CONSUMER span of this run, the child of the context the job ``carried``."""
    parent = None
    if carried:
        text = carried.decode()
        carrier = json.loads(text) if text.startswith("{") else {"traceparent": text}
        parent = propagate.extract(carrier)
    attributes = {
        "messaging.system": SYSTEM, "messaging.operation.type": "process", "messaging.operation.name": "process",
        "messaging.destination.name": queue, "messaging.message.id": job_id, "queues.job.name": name,
        "queues.job.attempt": attempt,
    }
    with _tracer().start_as_current_span(f"process {queue}", context=parent, kind=SpanKind.CONSUMER,
                                         attributes=attributes, record_exception=False,
                                         set_status_on_exception=False) as span:
        try:
            return function(*args, **kwargs)
        except BaseException as e:
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {e}"))
            raise
