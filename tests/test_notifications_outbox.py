"""The outbox: a service call survives Redis being down, and the sweep enqueues what it left pending, once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import redis
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from config.redis_server import free_port
from notifications import outbox, services
from notifications.models import Notification
from queues import get_queue

pytestmark = pytest.mark.django_db(transaction=True)


def nothing_listens() -> override_settings:
    """Point QUEUES_REDIS at a port where no server listens (connections are refused at once)."""
    return override_settings(QUEUES_REDIS={"URL": f"redis://127.0.0.1:{free_port()}/0", "RETRIES": 0})


def make_user(name: str = "ada") -> User:
    return User.objects.create_user(name, email=f"{name}@example.com")


def age(*rows: Notification, seconds: float = 60) -> None:
    """Make rows look untouched for ``seconds`` (older than the sweep's grace period)."""
    Notification.objects.filter(pk__in=[r.pk for r in rows]).update(
        updated_at=timezone.now() - timedelta(seconds=seconds))


def test_service__redis_down_returns_the_row_pending_and_logs_its_id(caplog: pytest.LogCaptureFixture,
                                                                       redis_client: redis.Redis) -> None:
    """Return the notification pending, without raising, and log which one waits for the sweep."""
    user = make_user()
    with nothing_listens(), caplog.at_level(logging.WARNING, logger="notifications"):
        notification = services.send_welcome_email(user.pk)
        reminder = services.schedule_reminder(user.pk, timezone.now() + timedelta(hours=1))["notification"]

    assert notification.status == reminder.status == "pending"
    assert set(Notification.objects.values_list("status", flat=True)) == {"pending"}
    messages = [r.getMessage() for r in caplog.records if r.name == "notifications.outbox"]
    assert any(f"notification(s) {notification.pk} stay pending" in m for m in messages), messages
    assert redis_client.keys("rq:job:*") == []


def test_sweep__enqueues_pending_rows_past_the_grace_period_once() -> None:
    """Enqueue old pending rows under their own job ids (a reminder at its time); leave fresh ones to their request."""
    user = make_user()
    with nothing_listens():
        welcome = services.send_welcome_email(user.pk)
        reminder = services.schedule_reminder(user.pk, timezone.now() + timedelta(hours=1))["notification"]
        fresh = services.schedule_reminder(user.pk, timezone.now() + timedelta(hours=2))["notification"]
    age(welcome, reminder)

    assert outbox.sweep(dry_run=True) == [welcome.pk, reminder.pk]
    assert sorted(outbox.sweep()) == sorted([welcome.pk, reminder.pk])
    assert outbox.sweep() == []

    queue = get_queue("email")
    assert queue.get_job(f"notification-{welcome.pk}").get_state() == "waiting"
    assert queue.get_job(f"notification-{reminder.pk}").get_state() == "delayed"
    assert queue.get_job(f"notification-{fresh.pk}") is None
    statuses = dict(Notification.objects.values_list("pk", "status"))
    assert statuses == {welcome.pk: "queued", reminder.pk: "queued", fresh.pk: "pending"}


def test_sweep__never_enqueues_a_row_twice_even_if_it_sweeps_again() -> None:
    """Add no second job when a pending row's job is already in Redis (a sweep racing its request)."""
    notification = services.send_welcome_email(make_user().pk)
    Notification.objects.filter(pk=notification.pk).update(status="pending")  # as if the request died after add
    age(notification)

    assert outbox.sweep() == [notification.pk]
    assert outbox.sweep() == []
    assert get_queue("email").get_job_counts()["waiting"] == 1


def test_service__next_call_after_redis_returns_flushes_the_outbox() -> None:
    """Enqueue rows left pending by an outage when the next service call's own enqueue succeeds."""
    with nothing_listens():
        stuck = services.send_welcome_email(make_user().pk)
    age(stuck)

    services.send_welcome_email(make_user("bob").pk)

    assert Notification.objects.get(pk=stuck.pk).status == "queued"
    assert get_queue("email").get_job_counts()["waiting"] == 2


def test_sweep_command__enqueues_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """Run `manage.py notifications_sweep`: list with --dry-run, then enqueue, in batches of --limit."""
    with nothing_listens():
        rows = [services.send_welcome_email(make_user(f"u{n}").pk) for n in range(3)]
    age(*rows)

    call_command("notifications_sweep", "--dry-run")
    assert f"would enqueue 3 pending notification(s): {[r.pk for r in rows]}" in capsys.readouterr().out
    call_command("notifications_sweep", "--limit", "2")
    out = capsys.readouterr().out
    assert "enqueued 2 pending notification(s)" in out and "enqueued 1 pending notification(s)" in out
    assert get_queue("email").get_job_counts()["waiting"] == 3


def test_sweep_command__redis_down_exits_2() -> None:
    """Exit 2 (could not run) with a one-line message when Redis is unreachable."""
    with nothing_listens():
        notification = services.send_welcome_email(make_user().pk)
        age(notification)
        with pytest.raises(CommandError, match="Redis is unreachable") as error:
            call_command("notifications_sweep")
    assert error.value.returncode == 2
    assert Notification.objects.get().status == "pending"


def test_sweep_command__refuses_bad_arguments() -> None:
    """Refuse a non-positive --every or --limit with argparse's message."""
    with pytest.raises(CommandError, match="'0' is not a number of seconds greater than 0"):
        call_command("notifications_sweep", "--every", "0")
    with pytest.raises(CommandError, match="'x' is not a whole number greater than 0"):
        call_command("notifications_sweep", "--limit", "x")


# --- queued rows whose job vanished from Redis ------------------------------------------------------------------

def run_email_worker() -> None:
    from queues.worker import SimpleWorker
    from tests.helpers import signals_restored

    with signals_restored():
        SimpleWorker(["email", "notifications"]).work(burst=True)


def test_sweep_lost__a_queued_row_whose_job_vanished_is_enqueued_again_under_its_id(
        redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """Redis lost a job (a crash with appendfsync everysec, an operator's drain): its row, queued, is enqueued again
    under the same job id once past the grace; a row whose job is still there is left alone; each is sent once."""
    from django.core import mail

    lost = services.send_welcome_email(make_user("lost").pk)
    kept = services.send_welcome_email(make_user("kept").pk)
    assert lost.status == kept.status == "queued"
    get_queue("email").remove_job(lost.job_id)  # the job is gone; the row still says queued
    age(lost, kept, seconds=120)

    assert outbox.sweep(lost=True, lost_grace=timedelta(seconds=60), dry_run=True) == [lost.pk]
    with caplog.at_level(logging.WARNING, logger="notifications"):
        assert outbox.sweep(lost=True, lost_grace=timedelta(seconds=60)) == [lost.pk]
    assert f"notification {lost.pk}" in caplog.text and "no longer in Redis" in caplog.text
    assert get_queue("email").get_job(lost.job_id) is not None
    assert outbox.sweep(lost=True, lost_grace=timedelta(seconds=60)) == []  # its job exists again: nothing to do

    run_email_worker()
    assert sorted(m.to[0] for m in mail.outbox) == ["kept@example.com", "lost@example.com"]
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_sweep_lost__rows_younger_than_the_grace_are_left_alone(redis_client: redis.Redis) -> None:
    row = services.send_welcome_email(make_user().pk)
    get_queue("email").remove_job(row.job_id)
    assert outbox.sweep(lost=True, lost_grace=timedelta(seconds=60)) == []


def test_sweep_command__lost_option(redis_client: redis.Redis) -> None:
    row = services.send_welcome_email(make_user().pk)
    get_queue("email").remove_job(row.job_id)
    age(row, seconds=600)
    call_command("notifications_sweep", "--lost")
    assert get_queue("email").get_job(row.job_id) is not None


def test_sweep_job__runs_the_lost_sweep_and_the_project_schedules_it_every_minute(redis_client: redis.Redis) -> None:
    from config import settings as project
    from queues.worker import SimpleWorker
    from tests.helpers import signals_restored

    assert project.QUEUES_JOB_SCHEDULERS["notifications-sweep"] == {
        "queue": "cleanup", "job": "notifications.sweep", "every": 60}
    row = services.send_welcome_email(make_user().pk)
    get_queue("email").remove_job(row.job_id)
    age(row, seconds=600)
    get_queue("cleanup").add("notifications.sweep")
    with signals_restored():
        SimpleWorker(["cleanup"]).work(burst=True)
    [done] = get_queue("cleanup").get_jobs("completed")
    assert done.rq_job.return_value() == {"enqueued": 1}
    assert get_queue("email").get_job(row.job_id) is not None
