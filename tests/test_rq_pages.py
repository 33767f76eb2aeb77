"""django-rq's own pages sit behind the queues permissions: reading needs view_queue, acting needs manage."""

from __future__ import annotations

import re

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


def test_rq_pages__rq_reads_every_job_the_worker_ran_its_status_and_result() -> None:
    """Show a job this app's worker completed, and one it failed, as RQ's own readers see them: `Job.fetch` with the
    JSON serializer (status, return value, the failure's traceback), and django-rq's job page (status, result)."""
    import rq
    from rq.serializers import JSONSerializer

    from queues.connection import get_connection
    from queues.worker import SimpleWorker
    from tests.helpers import signals_restored
    from tests.testapp.jobs import fail_on_email

    done = get_queue("email").add(add, {"a": 20, "b": 22})
    failed = get_queue("email").add(fail_on_email, {"reason": "boom"}, attempts=1)
    with signals_restored():
        SimpleWorker(["email"]).work(burst=True)

    connection = get_connection()
    fetched = rq.job.Job.fetch(done.id, connection=connection, serializer=JSONSerializer)
    assert (fetched.get_status(), fetched.return_value(), fetched.func_name, fetched.kwargs) == (
        "finished", 42, "tests.testapp.jobs.add", {"a": 20, "b": 22})
    assert fetched.started_at <= fetched.ended_at
    fetched = rq.job.Job.fetch(failed.id, connection=connection, serializer=JSONSerializer)
    assert fetched.get_status() == "failed"
    assert "RuntimeError: boom" in fetched.latest_result().exc_string
    assert failed.id in rq.registry.FailedJobRegistry("email", connection=connection).get_job_ids()

    index = get_queues_map()["email"]
    reader = staff("reader", "view_queue")
    page = reader.get(reverse("django_rq:job_detail", args=[index, done.id])).content.decode()
    assert 'rq-state-finished">finished<' in page and "SUCCESSFUL" in page
    [result_page] = set(re.findall(rf"/admin/django-rq/queues/{index}/{done.id}/results?/[^\"']+", page))
    assert "42" in reader.get(result_page).content.decode()  # the return value, from the results stream


def test_rq_pages__redis_down_answers_503_naming_the_server() -> None:
    """Answer 503 with "Redis at host:port/db could not be reached" on django-rq's pages, its metrics and its
    stats.json (as JSON) while nothing listens at the configured Redis, not a 500."""
    from config.redis_server import free_port

    index = get_queues_map()["email"]
    reader = staff("reader", "view_queue", "manage")
    port = free_port()
    pages = [reverse("django_rq:home"), reverse("django_rq:jobs", args=[index]),
             reverse("django_rq:queue_details", args=[index]), reverse("django_rq:failed_jobs", args=[index]),
             reverse("django_rq:finished_jobs", args=[index]), reverse("django_rq:scheduled_jobs", args=[index]),
             reverse("django_rq:started_jobs", args=[index]), reverse("django_rq:deferred_jobs", args=[index]),
             reverse("django_rq:job_detail", args=[index, "some-job"]), reverse("django_rq:workers", args=[index])]
    message = f"Redis at 127.0.0.1:{port}/0 could not be reached (ConnectionError: "
    with override_settings(QUEUES_REDIS={"URL": f"redis://127.0.0.1:{port}/0", "RETRIES": 0}):
        for url in pages:
            response = reader.get(url)
            assert response.status_code == 503, (url, response.status_code)
            assert message in response.content.decode(), url
        response = reader.post(reverse("django_rq:clear", args=[index]), {"post": "yes"})
        assert response.status_code == 503 and message in response.content.decode()
        response = reader.get(reverse("django_rq:home_json"))
        assert response.status_code == 503
        assert response.json()["error"].startswith(message)
        response = reader.get(reverse("django_rq:metrics"))
        assert response.status_code == 503 and message in response.content.decode()
    # Redis is back: django-rq's metrics collect again (it kept an empty registry after a failed first scrape)
    response = reader.get(reverse("django_rq:metrics"))
    assert response.status_code == 200 and 'rq_jobs{queue="email",status="queued"}' in response.content.decode()
