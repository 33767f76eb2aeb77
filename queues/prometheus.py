"""Prometheus metrics: django-rq's collector (workers, RQ's job counts) extended with this app's queues.

Serve them with ``queues.urls`` (``path("queues/", include("queues.urls"))`` → ``/queues/metrics``). As
django-rq's own ``/metrics``, the page needs a staff session or ``Authorization: Bearer <RQ_API_TOKEN>``.

- ``queues_jobs{queue, state}`` (gauge): waiting, prioritized, delayed, active, completed, failed, paused, as
  ``Queue.get_job_counts()`` (O(1) per state).
- ``queues_jobs_completed_total{queue}`` / ``queues_jobs_failed_total{queue}`` (counters): every job that
  completed or failed for good, ever (the ``total`` of ``Queue.get_metrics``; retries are not failures).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from .conf import get_config
from .connection import get_connection
from .queue import COUNT_COMMANDS, Queue


class QueuesCollector:
    """Collects every queue's counts and totals when Prometheus scrapes, in one round trip."""

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("queues_jobs", "Jobs per queue and state", labels=["queue", "state"])
        completed = CounterMetricFamily("queues_jobs_completed", "Jobs completed", labels=["queue"])
        failed = CounterMetricFamily("queues_jobs_failed", "Jobs failed for good (no attempts left)",
                                     labels=["queue"])
        connection = get_connection()
        pipe = connection.pipeline(transaction=False)
        readers = []
        for name in get_config().queues:
            queue = Queue(name, connection=connection)
            readers.append((name, queue.counts_on(pipe), queue.metrics_on(pipe, "completed", 1),
                            queue.metrics_on(pipe, "failed", 1)))
        replies = pipe.execute()  # every queue in one round trip
        at = 0
        for name, read_counts, read_completed, read_failed in readers:
            counts, _paused = read_counts(replies[at:at + COUNT_COMMANDS])
            for state, count in counts.items():
                jobs.add_metric([name, state], count)
            completed.add_metric([name], read_completed(replies[at + COUNT_COMMANDS])["total"])
            failed.add_metric([name], read_failed(replies[at + COUNT_COMMANDS + 1])["total"])
            at += COUNT_COMMANDS + 2
        yield jobs
        yield completed
        yield failed


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueuesCollector())
    try:
        from django_rq.contrib.prometheus import RQCollector
    except ImportError:  # pragma: no cover - prometheus_client is a dependency, so django-rq has its collector
        pass
    else:
        registry.register(RQCollector())
    return registry


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition of this app's and django-rq's metrics (staff, or the RQ_API_TOKEN bearer)."""
    from django_rq.stats_views import is_authorized

    if not is_authorized(request):
        return JsonResponse({"error": "Log in as staff, or send 'Authorization: Bearer <RQ_API_TOKEN>'."},
                            status=401)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(_registry()), headers={"Content-Type": content_type})
