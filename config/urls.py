from pathlib import Path

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    # django-rq's pages, needing the queues app's view / manage permissions (see queues/rq_pages.py).
    path("admin/django-rq/", include("queues.rq_pages")),
    path("admin/", admin.site.urls),
    path("api/notifications/", include("notifications.urls")),
    # Django's own login / logout / password pages, for users who are not staff (the in-app notifications API).
    path("accounts/", include("django.contrib.auth.urls")),
    path("exports/", include("exports.urls")),
    path("imports/", include("imports.urls")),
    path("queues/", include("queues.urls")),  # /queues/metrics for Prometheus
]
# Image uploads and thumbnails (the admin's previews) while DEBUG is on; static() adds nothing otherwise. Only
# images/: all of MEDIA_ROOT would also serve other users' exports and imports.
urlpatterns += static(settings.MEDIA_URL + "images/", document_root=Path(settings.MEDIA_ROOT) / "images")
