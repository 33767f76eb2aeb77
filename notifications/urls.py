"""The notifications API, included at ``api/notifications/`` by ``config/urls.py``."""

from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("", views.inbox_list, name="inbox"),
    path("read-all/", views.inbox_read_all, name="read_all"),
    path("<int:pk>/read/", views.inbox_read, name="read"),
    path("welcome/", views.welcome, name="welcome"),
    path("reminders/", views.reminders, name="reminders"),
    path("<int:pk>/", views.detail, name="detail"),
]
