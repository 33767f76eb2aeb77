"""URLs of the ``queues`` app that live outside the admin: ``path("queues/", include("queues.urls"))``."""

from django.urls import path

from . import prometheus

urlpatterns = [
    path("metrics", prometheus.metrics, name="queues-metrics"),
]
