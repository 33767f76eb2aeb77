from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # django-rq's pages, needing the queues app's view / manage permissions (see queues/rq_pages.py).
    path("admin/django-rq/", include("queues.rq_pages")),
    path("admin/", admin.site.urls),
    path("api/notifications/", include("notifications.urls")),
    path("queues/", include("queues.urls")),  # /queues/metrics for Prometheus
]
