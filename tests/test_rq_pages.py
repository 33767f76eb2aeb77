"""django-rq's own pages sit behind the queues permissions: reading needs view_queue, acting needs manage."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import Client, override_settings
from django.urls import reverse
from django_rq.settings import get_queues_map

from queues import get_queue
from tests.helpers import staff_client as staff
from tests.testapp.jobs import add

pytestmark = pytest.mark.django_db(transaction=True)


def job_urls() -> tuple[str, str, str]:
    handle = get_queue("email").add(add, {"a": 1, "b": 2})
    index = get_queues_map()["email"]
    return (handle.id, reverse("django_rq:job_detail", args=[index, handle.id]),
            reverse("django_rq:delete_job", args=[index, handle.id]))


def test_rq_pages__view_permission_reads_but_cannot_delete() -> None:
    """Show django-rq's job page to staff with queues.view_queue, and refuse their POST to delete the job."""
    job_id, detail, delete = job_urls()
    viewer = staff("viewer", "view_queue")
    assert viewer.get(detail).status_code == 200
    assert viewer.post(delete).status_code == 403
    assert get_queue("email").get_job(job_id) is not None


def test_rq_pages__manage_permission_deletes() -> None:
    """Let staff with queues.manage delete a job from django-rq's pages."""
    job_id, _detail, delete = job_urls()
    manager = staff("manager", "view_queue", "manage")
    assert manager.post(delete).status_code == 302
    assert get_queue("email").get_job(job_id) is None


def test_rq_pages__staff_without_permission_and_anonymous_users_are_refused(client: Client) -> None:
    """Refuse staff without the queues permissions (403) and send anonymous users to the admin login."""
    _job_id, detail, delete = job_urls()
    assert staff("plain").get(detail).status_code == 403
    response = client.get(detail)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert client.post(delete).status_code == 302
    assert get_queue("email").get_job_counts()["waiting"] == 1  # nothing deleted


def test_rq_pages__not_mounted_unguarded_in_the_admin(admin_client: Client) -> None:
    """Keep django-rq's own admin entry off (it would let any staff user act), and warn when it is on."""
    assert admin_client.get("/admin/django_rq/dashboard/").status_code == 404
    assert not [m for m in checks.run_checks() if m.id == "queues.W001"]
    with override_settings(RQ_SHOW_ADMIN_LINK=True):
        [warning] = [m for m in checks.run_checks() if m.id == "queues.W001"]
    assert "RQ_SHOW_ADMIN_LINK = False" in warning.hint
