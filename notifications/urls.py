"""The notifications API, included at ``api/notifications/`` by ``config/urls.py``."""

from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("welcome/", views.welcome, name="welcome"),
    path("reminders/", views.reminders, name="reminders"),
    path("<int:pk>/", views.detail, name="detail"),
]
