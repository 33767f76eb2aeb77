"""OpenTelemetry (the ``queues[otel]`` extra): a PRODUCER span per add, a CONSUMER span per run, the trace context
carried in the job; nothing at all without the package. Spans are read from the SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from queues import get_queue
from queues.worker import SimpleWorker
from tests.conftest import ROOT, manage_env
from tests.helpers import signals_restored
from tests.testapp.jobs import add, fail_then_record

pytestmark = pytest.mark.django_db(transaction=True)
EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans this test's code ends (the SDK set up once per test process, as an application does)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def run_burst(queue: str = "email") -> None:
    with signals_restored():
        SimpleWorker([queue]).work(burst=True)


def test_add__a_producer_span_whose_context_the_job_carries(spans, redis_client: redis.Redis) -> None:
    """An add inside the caller's span is a ``send`` span under it, and the job carries that span's context."""
    with trace.get_tracer("tests").start_as_current_span("request") as request:
        handle = get_queue("email").add(add, {"a": 1, "b": 2})
    send = next(span for span in spans.get_finished_spans() if span.name == "send email")
    assert send.kind is SpanKind.PRODUCER and send.parent.span_id == request.get_span_context().span_id
    assert dict(send.attributes) == {
        "messaging.system": "rq", "messaging.operation.type": "send", "messaging.operation.name": "add",
        "messaging.destination.name": "email", "messaging.message.id": handle.id,
        "queues.job.name": "tests.testapp.jobs.add"}
    carried = redis_client.hget(f"rq:job:{handle.id}", "otel").decode()
    context = send.get_span_context()
    assert carried == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def test_run__a_consumer_span_child_of_the_add(spans, redis_client: redis.Redis) -> None:
    """The worker's run is a ``process`` span in the add's trace, under its ``send`` span."""
    handle = get_queue("email").add(add, {"a": 2, "b": 3})
    run_burst()
    assert handle.get_state() == "completed"
    send = next(span for span in spans.get_finished_spans() if span.name == "send email")
    process = next(span for span in spans.get_finished_spans() if span.name == "process email")
    assert process.kind is SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id and process.parent.span_id == send.context.span_id
    assert process.attributes["messaging.message.id"] == handle.id
    assert process.attributes["queues.job.attempt"] == 1
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.status.status_code is StatusCode.UNSET


def test_run__a_failed_attempt_is_an_error_span_and_the_retry_a_new_one(spans, redis_client: redis.Redis) -> None:
    """A run that raises records the exception with an ERROR status; the retry is the next attempt's span."""
    handle = get_queue("notifications").add(fail_then_record, {"key": "tests:tracing", "failures": 1}, attempts=2,
                                            backoff=0)
    run_burst("notifications")
    run_burst("notifications")
    assert handle.get_state() == "completed"
    runs = [span for span in spans.get_finished_spans() if span.name == "process notifications"]
    assert [span.attributes["queues.job.attempt"] for span in runs] == [1, 2]
    assert runs[0].status.status_code is StatusCode.ERROR
    assert runs[0].events[0].name == "exception"
    assert runs[1].status.status_code is StatusCode.UNSET
    assert len({span.context.trace_id for span in runs}) == 1


def test_add_bulk__one_span_for_the_batch(spans, redis_client: redis.Redis) -> None:
    """A bulk add is one ``send`` span counting its jobs; each job carries its context."""
    handles = get_queue("email").add_bulk([{"job": add, "data": {"a": n, "b": n}} for n in range(3)])
    (send,) = [span for span in spans.get_finished_spans() if span.name == "send email"]
    assert send.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in send.attributes
    assert len({redis_client.hget(f"rq:job:{handle.id}", "otel") for handle in handles}) == 1


@pytest.mark.parametrize("setup", ["sys.modules['opentelemetry'] = None  # the extra is not installed", "pass"])
def test_without_a_tracer_nothing_is_written_into_the_job(setup: str, redis_client: redis.Redis) -> None:
    """Without the package (or with the API alone, no SDK configured) an add writes no trace context, and a
    worker runs the job as usual."""
    script = textwrap.dedent(f"""
        import sys
        {setup}
        import django
        django.setup()
        from queues import get_queue, tracing
        from queues.worker import SimpleWorker
        from tests.testapp.jobs import add
        handle = get_queue("email").add(add, {{"a": 1, "b": 1}})
        SimpleWorker(["email"]).work(burst=True)
        print(tracing.ENABLED, handle.get_state(), handle.rq_job.connection.hexists(handle.rq_job.key, "otel"))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=manage_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    enabled = "None" not in setup
    assert done.stdout.split()[-3:] == [str(enabled), "completed", "False"]
