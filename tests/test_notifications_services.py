"""The notifications services and the deliver job, in process: rows, jobs in the session's Redis, locmem mail.

Jobs run in an in-process ``SimpleWorker`` (burst); the worker process, real SMTP and a stopped Redis are
in test_notifications_e2e.py.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import jobs, services
from notifications.exceptions import InvalidNotification, NotChangeable, NotFound, Undeliverable
from notifications.models import Channel, Notification, Status
from queues import Queue, get_queue
from queues.worker import SimpleWorker

pytestmark = pytest.mark.django_db(transaction=True)


class FailingBackend:
    """An email backend whose server is always down."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def send_messages(self, messages: list) -> int:
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.fixture(autouse=True)
def restore_signal_handlers() -> Iterator[None]:
    """The in-process worker installs SIGINT/SIGTERM handlers: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def run_jobs(*queues: str) -> None:
    SimpleWorker(list(queues or ("email", "notifications"))).work(burst=True)


def make_user(name: str = "ada", email: str | None = None) -> User:
    return User.objects.create_user(name, email=f"{name}@example.com" if email is None else email, password="x")


def test_send_welcome_email__creates_the_row_and_enqueues_only_its_id() -> None:
    """Create a queued row and a waiting job `notification-<id>` whose data is only the row's id."""
    user = make_user()

    notification = services.send_welcome_email(user.pk)

    row = Notification.objects.get()
    assert row == notification
    assert (row.recipient_id, row.kind, row.channel, row.status) == (user.pk, "welcome", "email", "queued")
    assert row.job_id == notification.job_id == f"notification-{row.pk}"
    handle = get_queue("email").get_job(row.job_id)
    assert handle.name == "notifications.deliver"
    assert handle.data == {"notification_id": row.pk}
    assert handle.get_state() == "waiting"


def test_send_welcome_email__reads_only_the_user_fields_it_needs() -> None:
    """Select the user's id and email only: never the password hash or the whole row."""
    user = make_user()
    with CaptureQueriesContext(connection) as queries:
        services.send_welcome_email(user.pk)
    user_queries = [q["sql"] for q in queries if 'FROM "auth_user"' in q["sql"]]
    assert len(user_queries) == 1
    assert '"auth_user"."email"' in user_queries[0]
    assert "password" not in user_queries[0] and "username" not in user_queries[0]


def test_send_welcome_email__unknown_or_malformed_user_raises_not_found(redis_client: redis.Redis) -> None:
    """Raise NotFound for a user id that does not exist or is no id at all, writing nothing."""
    with pytest.raises(NotFound, match="User 404 does not exist"):
        services.send_welcome_email(404)
    with pytest.raises(NotFound, match="User 'abc' does not exist"):
        services.send_welcome_email("abc")
    assert not Notification.objects.exists()
    assert redis_client.dbsize() == 0


def test_send_welcome_email__user_without_address_is_undeliverable() -> None:
    """Refuse a welcome email to a user without an email address."""
    user = make_user(email="")
    with pytest.raises(Undeliverable, match="has no email address"):
        services.send_welcome_email(user.pk)


def test_send_welcome_email__a_second_call_returns_the_first(redis_client: redis.Redis) -> None:
    """Return the first welcome on a second call: one row, one job."""
    user = make_user()
    first = services.send_welcome_email(user.pk)
    second = services.send_welcome_email(str(user.pk))
    assert second.pk == first.pk
    assert Notification.objects.count() == 1
    assert get_queue("email").get_job_counts()["waiting"] == 1


def test_send_welcome_email__rollback_leaves_no_row_and_no_job(redis_client: redis.Redis) -> None:
    """Write nothing to Redis when the caller's transaction rolls back."""
    user = make_user()

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        services.send_welcome_email(user.pk)
        raise Rollback
    assert not Notification.objects.exists()
    assert redis_client.keys("rq:job:*") == []


def test_deliver__sends_the_rendered_email_and_marks_the_row_sent() -> None:
    """Render the kind's subject, text and HTML for the user, send once, and mark the row sent."""
    user = make_user("grace")
    notification = services.send_welcome_email(user.pk)

    run_jobs("email")

    [message] = mail.outbox
    assert message.to == ["grace@example.com"]
    assert message.subject == "Welcome, grace!"
    assert "Hello grace," in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and "<p>Hello grace,</p>" in html
    assert message.extra_headers["X-Notification-ID"] == str(notification.pk)
    row = Notification.objects.get()
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.sent_at is not None
    handle = get_queue("email").get_job(row.job_id)
    assert handle.get_state() == "completed"
    assert handle.return_value() == {"notification_id": row.pk, "status": "sent"}  # no address kept in Redis


def test_deliver__running_again_after_a_send_never_sends_twice() -> None:
    """End a second run of a sent notification (a retry, a duplicate) without sending."""
    notification = services.send_welcome_email(make_user().pk)
    run_jobs("email")
    assert len(mail.outbox) == 1

    result = jobs.deliver(notification.pk)

    assert result == {"notification_id": notification.pk, "skipped": "it is sent"}
    assert len(mail.outbox) == 1
    assert Notification.objects.get().attempts == 1


def test_deliver__canceled_row_ends_the_job_without_sending_or_failing() -> None:
    """Complete the job of a canceled notification with a reason, sending nothing."""
    notification = services.send_welcome_email(make_user().pk)
    services.cancel(notification.pk)

    run_jobs("email")

    assert mail.outbox == []
    handle = get_queue("email").get_job(notification.job_id)
    assert handle.get_state() == "completed"
    assert handle.return_value()["skipped"] == "it is canceled"


def test_deliver__deleted_user_cancels_the_row_without_retries() -> None:
    """Cancel the row (kept, recipient emptied) when the user was deleted before delivery; no retry."""
    user = make_user()
    notification = services.send_welcome_email(user.pk)
    user.delete()

    run_jobs("email")

    row = Notification.objects.get()
    assert (row.recipient_id, row.status) == (None, "canceled")
    assert row.last_error == "The recipient was deleted before delivery."
    handle = get_queue("email").get_job(notification.job_id)
    assert handle.get_state() == "completed"
    assert mail.outbox == []


def test_deliver__run_interrupted_while_sending_fails_instead_of_sending_again() -> None:
    """Fail, without sending, a row a killed run left `sending`: the mail may have gone out already."""
    notification = services.send_welcome_email(make_user().pk)
    Notification.objects.filter(pk=notification.pk).update(status=Status.SENDING)

    run_jobs("email")

    assert mail.outbox == []
    row = Notification.objects.get()
    assert row.status == "failed" and "not sent again" in row.last_error
    handle = get_queue("email").get_job(notification.job_id)
    assert handle.get_state() == "failed"  # UnrecoverableError: listed for an operator, not retried
    assert handle.rq_job.retries_left == 2


@override_settings(EMAIL_BACKEND="tests.test_notifications_services.FailingBackend")
def test_deliver__failed_send_with_attempts_left_requeues_the_row_with_the_error() -> None:
    """Put the row back to queued with the error after a failed send, and let the queue retry the job."""
    notification = services.send_welcome_email(make_user().pk)

    run_jobs("email")

    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert get_queue("email").get_job(notification.job_id).get_state() == "delayed"  # retry in 1 s


def test_deliver__missing_template_fails_at_once() -> None:
    """Fail the row and the job at once (no retries) when the kind has no templates."""
    user = make_user()
    notification = Notification.objects.create(recipient=user, kind="no-such-kind", job_id="notification-x1")
    get_queue("email").add(jobs.deliver, {"notification_id": notification.pk}, job_id=notification.job_id)

    run_jobs("email")

    row = Notification.objects.get()
    assert row.status == "failed"
    assert row.last_error.startswith("TemplateDoesNotExist: notifications/email/no-such-kind_subject.txt")
    assert get_queue("email").get_job(row.job_id).get_state() == "failed"


def test_schedule_reminder__returns_scheduled_and_date_and_delays_the_job() -> None:
    """Return the seed's {scheduled, date} with the row, and delay its job until the date."""
    user = make_user()
    when = timezone.now() + timedelta(hours=1)

    result = services.schedule_reminder(user.pk, when, message="Call Bob")

    notification = result["notification"]
    assert result["scheduled"] is True and result["date"] == when.isoformat()
    assert (notification.kind, notification.scheduled_for, notification.context) == ("reminder", when,
                                                                                      {"message": "Call Bob"})
    assert get_queue("email").get_job(notification.job_id).get_state() == "delayed"
    run_jobs("email")
    assert mail.outbox == []


def test_schedule_reminder__date_in_the_past_sends_now() -> None:
    """Send a reminder whose date has passed at once, rendering its message."""
    user = make_user()
    services.schedule_reminder(user.pk, datetime(2020, 1, 1, tzinfo=UTC), message="Water the plants")

    run_jobs("email")

    [message] = mail.outbox
    assert message.subject == "Reminder: Water the plants"
    assert "Water the plants" in message.body


def test_schedule_reminder__naive_datetime_is_refused() -> None:
    """Refuse a naive datetime with a ValueError that says how to make an aware one."""
    user = make_user()
    with pytest.raises(ValueError, match="aware datetime"):
        services.schedule_reminder(user.pk, datetime(2030, 1, 1, 9, 0))  # noqa: DTZ001
    with pytest.raises(InvalidNotification, match="must be a datetime"):
        services.schedule_reminder(user.pk, "2030-01-01T09:00:00Z")
    assert not Notification.objects.exists()


def test_reschedule__moves_the_reminder_to_a_new_job_and_the_old_one_is_superseded() -> None:
    """Give a rescheduled reminder job `notification-<id>-2`; the old job ends as superseded, one email goes out."""
    user = make_user()
    notification = services.schedule_reminder(user.pk, timezone.now() + timedelta(hours=1))["notification"]
    old_job = notification.job_id

    moved = services.reschedule(notification.pk, timezone.now() - timedelta(seconds=1))

    assert moved.job_id == f"notification-{notification.pk}-2"
    assert moved.status == "queued"
    assert services.reschedule(notification.pk, timezone.now() - timedelta(seconds=1)).job_id.endswith("-3")
    Notification.objects.filter(pk=notification.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    # The old job falls due as well (as if its hour had passed): it must not deliver.
    get_queue("email").add(jobs.deliver, {"notification_id": notification.pk}, job_id=f"{old_job}-old")
    run_jobs("email")

    assert len(mail.outbox) == 1
    assert Notification.objects.get().status == "sent"
    skipped = get_queue("email").get_job(f"{old_job}-old").return_value()
    assert skipped["skipped"] == f"superseded by job notification-{notification.pk}-3"


def test_cancel__only_before_the_notification_starts() -> None:
    """Cancel a queued notification (again: no change); refuse to cancel a sent one."""
    notification = services.schedule_reminder(make_user().pk, timezone.now() + timedelta(hours=1))["notification"]
    assert services.cancel(notification.pk).status == "canceled"
    assert services.cancel(notification.pk).status == "canceled"

    sent = services.send_welcome_email(make_user("bob").pk)
    run_jobs("email")
    with pytest.raises(NotChangeable, match="is sent: only a pending or queued notification can be canceled"):
        services.cancel(sent.pk)
    with pytest.raises(NotFound):
        services.cancel(999_999)


def test_resend__sends_a_failed_notification_again_under_a_new_job_id() -> None:
    """Resend a failed notification with job id `-2`; refuse to resend a queued one."""
    notification = services.send_welcome_email(make_user().pk)
    with pytest.raises(NotChangeable, match="only a failed or canceled notification can be resent"):
        services.resend(notification.pk)
    Notification.objects.filter(pk=notification.pk).update(status=Status.FAILED, last_error="boom")

    again = services.resend(notification.pk)
    run_jobs("email")

    assert again.job_id == f"notification-{notification.pk}-2"
    assert len(mail.outbox) == 1
    assert Notification.objects.get().status == "sent"


def test_notify_many__one_bulk_add_for_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Create one row per existing user with an address, in one add_bulk call, and deliver each."""
    users = [make_user(f"user{n}") for n in range(5)]
    no_address = make_user("silent", email="")
    calls: list[int] = []
    original = Queue.add_bulk

    def counting(self: Queue, specs: list) -> list:
        specs = list(specs)
        calls.append(len(specs))
        return original(self, specs)

    monkeypatch.setattr(Queue, "add_bulk", counting)

    rows = services.notify_many([u.pk for u in users] + [no_address.pk, 999_999], "reminder",
                                context={"message": "Maintenance tonight"})

    assert calls == [5]
    assert sorted(r.recipient_id for r in rows) == sorted(u.pk for u in users)
    assert {r.job_id for r in rows} == {f"notification-{r.pk}" for r in rows}
    run_jobs("email")
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in users)
    assert all("Maintenance tonight" in m.body for m in mail.outbox)


def test_notify_many__unknown_kind_and_welcome_are_refused() -> None:
    """Refuse a kind without templates (or not a template name), and welcome (once per user)."""
    user = make_user()
    for kind in ("newsletter", "../secrets", "Reminder"):
        with pytest.raises(InvalidNotification, match="Unknown kind"):
            services.notify_many([user.pk], kind)
    with pytest.raises(InvalidNotification, match="send_welcome_email"):
        services.notify_many([user.pk], "welcome")


def test_in_app_notification__is_delivered_by_the_notifications_queue_without_email() -> None:
    """Deliver an in-app reminder on the notifications queue: the row becomes sent, no email."""
    user = make_user(email="")
    result = services.schedule_reminder(user.pk, timezone.now(), channel=Channel.IN_APP)

    assert get_queue("notifications").get_job(result["notification"].job_id) is not None
    run_jobs("notifications")

    assert Notification.objects.get().status == "sent"
    assert mail.outbox == []
