"""The notifications admin: list, filters, search, the job's state, and the resend and cancel actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django_rq.settings import get_queues_map

from config.redis_server import free_port
from notifications import services
from notifications.models import Notification, Status
from queues import get_queue

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/notifications/notification/"


@pytest.fixture
def rows() -> dict[str, Notification]:
    ada = User.objects.create_user("ada", email="ada@example.com")
    bob = User.objects.create_user("bob", email="bob@example.org")
    welcome = services.send_welcome_email(ada.pk)
    reminder = services.schedule_reminder(bob.pk, timezone.now() + timedelta(hours=1))["notification"]
    failed = services.schedule_reminder(ada.pk, timezone.now() + timedelta(hours=2))["notification"]
    Notification.objects.filter(pk=failed.pk).update(status=Status.FAILED, last_error="SMTPServerDisconnected: x")
    return {"welcome": welcome, "reminder": reminder, "failed": failed}


def listed(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_admin__list_filters_and_search(admin_client: Client, rows: dict[str, Notification]) -> None:
    """Filter the list by status, kind and channel; search it by username and email."""
    assert listed(admin_client.get(CHANGELIST)) == {r.pk for r in rows.values()}
    assert listed(admin_client.get(CHANGELIST, {"status__exact": "failed"})) == {rows["failed"].pk}
    assert listed(admin_client.get(CHANGELIST, {"kind": "welcome"})) == {rows["welcome"].pk}
    assert listed(admin_client.get(CHANGELIST, {"channel__exact": "email"})) == {r.pk for r in rows.values()}
    assert listed(admin_client.get(CHANGELIST, {"q": "bob"})) == {rows["reminder"].pk}
    assert listed(admin_client.get(CHANGELIST, {"q": "example.com"})) == {rows["welcome"].pk, rows["failed"].pk}
    page = admin_client.get(CHANGELIST).content.decode()
    for title in ("By status", "By kind", "By channel"):
        assert title in page


def test_admin__change_page_shows_the_job_state_linked_to_the_dashboard(admin_client: Client,
                                                                        rows: dict[str, Notification]) -> None:
    """Show the job's queue state with a link to its page; say so when Redis cannot be reached."""
    reminder = rows["reminder"]
    url = reverse("admin:notifications_notification_change", args=[reminder.pk])

    page = admin_client.get(url).content.decode()

    job_url = reverse("django_rq:job_detail", args=[get_queues_map()["email"], reminder.job_id])
    assert f'<a href="{job_url}">delayed</a>' in page
    assert admin_client.get(job_url).status_code == 200  # django-rq's job page reads our JSON job
    with override_settings(QUEUES_REDIS={"URL": f"redis://127.0.0.1:{free_port()}/0", "RETRIES": 0}):
        assert "unknown (Redis is unreachable)" in admin_client.get(url).content.decode()


def test_admin__no_add_button(admin_client: Client) -> None:
    """Refuse adding notifications by hand: the services create them."""
    assert admin_client.get(CHANGELIST + "add/").status_code == 403


def test_admin__resend_and_cancel_actions(admin_client: Client, rows: dict[str, Notification]) -> None:
    """Resend the failed row under a new job id, cancel the queued ones, and skip rows in other states."""
    everything = [r.pk for r in rows.values()]
    response = admin_client.post(CHANGELIST, {"action": "resend", "_selected_action": everything}, follow=True)
    page = response.content.decode()
    assert "1 notification(s) resent." in page
    assert "2 notification(s) skipped: only failed or canceled ones can be resent." in page
    resent = Notification.objects.get(pk=rows["failed"].pk)
    assert (resent.status, resent.job_id) == ("queued", f"notification-{resent.pk}-2")
    assert get_queue("email").get_job(resent.job_id).get_state() == "delayed"

    response = admin_client.post(CHANGELIST, {"action": "cancel", "_selected_action": everything}, follow=True)
    assert "3 notification(s) canceled." in response.content.decode()
    assert set(Notification.objects.values_list("status", flat=True)) == {"canceled"}


def test_admin__actions_need_their_permissions(rows: dict[str, Notification]) -> None:
    """Offer "cancel" to staff with the change permission, and "resend" only with resend_notification."""
    clerk = User.objects.create_user("clerk", password="x", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_notification",
                                                                         "change_notification"]))
    client = Client()
    client.force_login(clerk)

    actions = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert "cancel" in actions and "resend" not in actions
    client.post(CHANGELIST, {"action": "resend", "_selected_action": [rows["failed"].pk]})
    assert Notification.objects.get(pk=rows["failed"].pk).status == "failed"

    clerk.user_permissions.add(Permission.objects.get(codename="resend_notification"))
    clerk = User.objects.get(pk=clerk.pk)  # drop the permission cache
    client.force_login(clerk)
    actions = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert "resend" in actions
