"""The JSON API at /api/notifications/: authentication, CSRF, permissions, validation, errors."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.utils import timezone

from notifications import services
from notifications.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)

WELCOME = "/api/notifications/welcome/"
REMINDERS = "/api/notifications/reminders/"


def detail(pk: int) -> str:
    return f"/api/notifications/{pk}/"


def post(client: Client, url: str, data: Any, method: str = "post") -> HttpResponse:
    body = data if isinstance(data, str | bytes) else json.dumps(data)
    return getattr(client, method)(url, body, content_type="application/json")


@pytest.fixture
def user() -> User:
    return User.objects.create_user("ada", email="ada@example.com", password="secret-pass-1")


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("ops", email="ops@example.com", password="secret-pass-1", is_staff=True)


@pytest.fixture
def user_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_api__welcome_for_yourself_is_accepted(user: User, user_client: Client) -> None:
    """Answer 202 with the queued notification; a repeat answers 200 with the same one."""
    response = post(user_client, WELCOME, {"user_id": user.pk})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "welcome" and body["user_id"] == user.pk
    assert "last_error" not in body and "job_id" not in body  # operators' details, staff only
    again = post(user_client, WELCOME, {"user_id": user.pk})
    assert again.status_code == 202 and again.json()["id"] == body["id"]
    Notification.objects.filter(pk=body["id"]).update(status="sent")
    assert post(user_client, WELCOME, {"user_id": user.pk}).status_code == 200


def test_api__reminder_answers_scheduled_date_and_the_notification(user: User, user_client: Client) -> None:
    """Answer 202 with {scheduled, date, notification} for an ISO 8601 time with a zone."""
    at = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    response = post(user_client, REMINDERS, {"user_id": user.pk, "at": at.isoformat().replace("+00:00", "Z"),
                                             "message": "Stand-up"})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["scheduled"] is True
    assert body["date"] == at.isoformat()
    assert body["notification"]["scheduled_for"] == at.isoformat()
    assert Notification.objects.get().context == {"message": "Stand-up"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("{not json", "body", "Expecting property name"),
        ("[1, 2]", "body", "Send a JSON object."),
        ({}, "user_id", "This field is required."),
        ({"user_id": "abc", "at": "2030-01-01T09:00:00Z"}, "user_id", "Enter a user id"),
        ({"user_id": True, "at": "2030-01-01T09:00:00Z"}, "user_id", "Enter a user id"),
        ({"user_id": 1}, "at", "This field is required."),
        ({"user_id": 1, "at": "next tuesday"}, "at", "Enter an ISO 8601 date and time"),
        ({"user_id": 1, "at": "2030-02-30T09:00:00Z"}, "at", "Enter an ISO 8601 date and time"),
        ({"user_id": 1, "at": 1893488400}, "at", "Enter an ISO 8601 date and time"),
        ({"user_id": 1, "at": "2030-01-01T09:00:00"}, "at", "Add a time zone"),
    ],
)
def test_api__bad_body_answers_400_naming_the_field(staff_client: Client, body: Any, field: str,
                                                    message: str) -> None:
    """Answer 400 with the field that is wrong (or "body" for what is not a JSON object)."""
    response = post(staff_client, REMINDERS, body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors
    assert not Notification.objects.exists()


def test_api__unknown_user_answers_404(staff_client: Client) -> None:
    """Answer 404 for a user that does not exist."""
    response = post(staff_client, WELCOME, {"user_id": 999_999})
    assert response.status_code == 404
    assert response.json() == {"error": "User 999999 does not exist."}


def test_api__user_without_address_answers_400(staff_client: Client) -> None:
    """Answer 400 on user_id for a welcome email to a user without an address."""
    silent = User.objects.create_user("silent")
    response = post(staff_client, WELCOME, {"user_id": silent.pk})
    assert response.status_code == 400
    assert response.json()["errors"] == {"user_id": [f"User {silent.pk} has no email address."]}


def test_api__not_logged_in_answers_401(user: User) -> None:
    """Answer 401 JSON to every endpoint when nobody is logged in."""
    client = Client()
    for response in (post(client, WELCOME, {"user_id": user.pk}), client.get(detail(1))):
        assert response.status_code == 401
        assert response.json() == {"error": "Authentication required: log in first."}


def test_api__others_act_only_for_themselves_staff_for_anyone(user: User, user_client: Client,
                                                              staff_client: Client) -> None:
    """Refuse (403) a user acting for another; see another's notification as 404; staff may do both."""
    other = User.objects.create_user("bob", email="bob@example.com")
    assert post(user_client, WELCOME, {"user_id": other.pk}).status_code == 403
    assert post(user_client, WELCOME, {"user_id": 999_999}).status_code == 403  # no probing for user ids

    response = post(staff_client, WELCOME, {"user_id": other.pk})
    assert response.status_code == 202
    others = response.json()["id"]
    assert response.json()["job_id"] == f"notification-{others}"
    assert user_client.get(detail(others)).status_code == 404
    assert user_client.delete(detail(others)).status_code == 404
    assert staff_client.get(detail(others)).status_code == 200


def test_api__get_cancel_and_reschedule_your_reminder(user: User, user_client: Client) -> None:
    """Read a reminder, move it (PATCH), cancel it (DELETE), and get 409 for what has moved on."""
    notification = services.schedule_reminder(user.pk, timezone.now() + timedelta(hours=1))["notification"]

    assert user_client.get(detail(notification.pk)).json()["status"] == "queued"
    moved = post(user_client, detail(notification.pk), {"at": "2031-01-01T08:00:00+01:00"}, method="patch")
    assert moved.status_code == 202 and moved.json()["scheduled_for"] == "2031-01-01T07:00:00+00:00"
    assert Notification.objects.get().job_id == f"notification-{notification.pk}-2"
    canceled = user_client.delete(detail(notification.pk))
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert user_client.delete(detail(notification.pk)).status_code == 200  # again: no change

    conflict = post(user_client, detail(notification.pk), {"at": "2031-01-01T08:00:00Z"}, method="patch")
    assert conflict.status_code == 409
    assert "only a pending or queued notification can be rescheduled" in conflict.json()["error"]
    Notification.objects.update(status="sent")
    assert user_client.delete(detail(notification.pk)).status_code == 409
    assert user_client.get(detail(999_999)).status_code == 404


def test_api__csrf_is_enforced_for_session_authentication(user: User) -> None:
    """Refuse an unsafe request without the CSRF token (403 JSON); accept it with the token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    refused = post(client, WELCOME, {"user_id": user.pk})
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("CSRF check failed: CSRF cookie not set")

    request = RequestFactory().get("/")
    token = get_token(request)  # what a page would put in its form; the cookie holds the secret
    client.cookies[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
    accepted = client.post(WELCOME, json.dumps({"user_id": user.pk}), content_type="application/json",
                           headers={"X-CSRFToken": token})
    assert accepted.status_code == 202, accepted.content


def test_api__wrong_method_answers_405_with_allow(user_client: Client) -> None:
    """Answer 405 JSON with an Allow header for a method an endpoint does not take."""
    response = user_client.get(WELCOME)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json() == {"error": "Method GET is not allowed here."}


def test_api__unexpected_error_answers_500_without_a_traceback(user: User, user_client: Client,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Answer a generic 500 JSON (the traceback goes to the log, not the client)."""
    def broken(user_id: int) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "send_welcome_email", broken)
    response = post(user_client, WELCOME, {"user_id": user.pk})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error."}
    assert b"secret internals" not in response.content and b"Traceback" not in response.content


@pytest.mark.parametrize("megabytes", [3, 30])
def test_api__oversized_body_answers_413_naming_the_limit(user: User, user_client: Client, megabytes: int) -> None:
    """Answer 413 JSON naming DATA_UPLOAD_MAX_MEMORY_SIZE to a body over it, on every endpoint that reads one;
    change nothing."""
    notification = services.schedule_reminder(user.pk, timezone.now() + timedelta(hours=1))["notification"]
    padding = "x" * (megabytes * 1024 * 1024)
    expected = {"error": "The request body is over the 2,621,440-byte limit (DATA_UPLOAD_MAX_MEMORY_SIZE): "
                         "send less, or put large content somewhere else and send its id."}
    for url, method, body in ((WELCOME, "post", {"user_id": user.pk, "padding": padding}),
                              (REMINDERS, "post", {"user_id": user.pk, "at": "2031-01-01T08:00:00Z",
                                                   "message": padding}),
                              (detail(notification.pk), "patch", {"at": "2031-01-01T08:00:00Z", "padding": padding})):
        response = post(user_client, url, body, method=method)
        assert (response.status_code, response.json()) == (413, expected), (url, response.content[:200])

    # A form-encoded body is read by the CSRF check (it looks for csrfmiddlewaretoken) before the view runs.
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
    response = client.post(WELCOME, f"user_id={user.pk}&padding={padding}",
                           content_type="application/x-www-form-urlencoded", headers={"X-CSRFToken": token})
    assert (response.status_code, response.json()) == (413, expected)
    assert list(Notification.objects.values_list("pk", "status", "scheduled_for")) == [
        (notification.pk, "queued", notification.scheduled_for)]
