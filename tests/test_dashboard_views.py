"""The admin dashboard through Django's test client: who may see and do what, what the pages show, and what
each action does in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse
from django_rq.settings import get_queues_map
from rq.utils import utcformat

from config.redis_server import RedisServer
from queues import get_queue
from queues.conf import get_config
from queues.dashboard import backlog_key, chart, connection_label, health_marks
from queues.worker import SimpleWorker
from tests.helpers import ended_minute, per_minute, signals_restored, wait_for, within_one_minute, worker_process
from tests.helpers import staff_client as staff
from tests.testapp.jobs import add, fail_with, note, slow

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/admin/queues/queue/"
STATS = DASHBOARD + "_stats/"


def queue_url(name: str) -> str:
    return reverse("admin:queues_queue_queue", args=[name])


def action_url(name: str, action: str) -> str:
    return reverse("admin:queues_queue_action", args=[name, action])


@pytest.fixture
def viewer() -> Client:
    return staff("viewer", "view_queue")


@pytest.fixture
def manager() -> Client:
    return staff("manager", "view_queue", "manage")


def run_burst(*queues: str) -> None:
    with signals_restored():
        SimpleWorker(list(queues)).work(burst=True)


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def flashed(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_dashboard__listed_on_the_admin_index(admin_client: Client) -> None:
    """Show "Queues" on the admin index, linking to the dashboard."""
    index = page(admin_client.get("/admin/"))
    assert f'<a href="{DASHBOARD}"' in index
    assert ">Queues</a>" in index


def test_dashboard__anonymous_users_go_to_login(client: Client) -> None:
    """Send anonymous users to the admin login page from every page, the JSON and the actions."""
    for url in (DASHBOARD, STATS, queue_url("email")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")
    response = client.post(action_url("email", "pause"))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert not get_queue("email").is_paused()


def test_dashboard__staff_without_the_permission_is_refused() -> None:
    """Refuse staff who have neither queues permission, and keep "Queues" off their admin index."""
    nobody = staff("nobody")
    for url in (DASHBOARD, STATS, queue_url("email")):
        assert nobody.get(url).status_code == 403
    assert f'href="{DASHBOARD}"' not in page(nobody.get("/admin/"))


def test_dashboard__every_queue_with_its_counts(manager: Client) -> None:
    """List every configured queue with its counts, workers, concurrency and limiter, as get_job_counts says."""
    email = get_queue("email")
    for n in range(3):
        email.add(add, {"a": n, "b": 1})
    email.add(add, {"a": 9, "b": 9}, priority=3)
    email.add(add, {"a": 9, "b": 9}, delay=3600)
    notifications = get_queue("notifications")
    done = notifications.add(note, {"key": "k", "value": "v"})
    failed = notifications.add(fail_with, {"key": "k", "error": "x"}, attempts=1)
    run_burst("notifications")

    response, now = within_one_minute(lambda: manager.get(DASHBOARD))  # the chart's last minute is `now`
    html = page(response)

    rows = {q.name: q for q in response.context["queues"]}
    assert list(rows) == list(get_config().queues)
    assert rows["email"].counts == {**email.get_job_counts(), "rate_limited": 0} | {"waiting": 3, "prioritized": 1,
                                                                                    "delayed": 1}
    assert (rows["notifications"].counts["completed"], rows["notifications"].counts["failed"]) == (1, 1)
    # Each job counts in the minute it ended, the last one or, past hh:mm:59, the one before.
    done_at, failed_at = ended_minute(done.id, "notifications"), ended_minute(failed.id, "notifications")
    assert rows["notifications"].completed.per_minute == per_minute({done_at: 1}, now)
    assert rows["notifications"].failed.per_minute == per_minute({failed_at: 1}, now)
    assert rows["email"].workers == 0
    assert "no worker" in rows["email"].health
    assert "failures rising" in rows["notifications"].health
    assert rows["limited"].limiter == "10 per 1 s"
    assert rows["pool"].concurrency == 3
    for name in get_config().queues:
        assert f'<tr data-queue="{name}">' in html
        assert f'href="{queue_url(name)}"' in html
    assert '<td class="queues-num" data-count="waiting">3</td>' in html
    assert f'<rect class="queues-chart-failed" x="{59 - (now - failed_at)}"' in html
    assert f"Redis <code>127.0.0.1:{get_config().redis['URL'].rsplit(':', 1)[1]}</code>" in html


def test_dashboard__counts_workers_serving_each_queue(admin_client: Client, redis_client: redis.Redis) -> None:
    """Count the live workers serving a queue, and drop the "no worker" mark while one runs."""
    with worker_process("rqworker", "email") as proc:
        wait_for(lambda: admin_client.get(STATS).json()["queues"][0]["workers"] == 1, 30, "the worker to register",
                 proc)
        stats = {q["name"]: q for q in admin_client.get(STATS).json()["queues"]}
        assert "no worker" not in stats["email"]["health"]
        assert stats["notifications"]["workers"] == 0
        assert "no worker" in stats["notifications"]["health"]
        # A worker killed without a goodbye stays in RQ's set until its key expires; then it no longer counts.
        redis_client.sadd("rq:workers:notifications", "rq:worker:gone")
        stats = {q["name"]: q for q in admin_client.get(STATS).json()["queues"]}
        assert (stats["email"]["workers"], stats["notifications"]["workers"]) == (1, 0)


def test_dashboard__json_for_the_live_refresh(viewer: Client) -> None:
    """Serve every queue's numbers and drawn cells as JSON, or one queue's with its active jobs' progress."""
    get_queue("email").add(add, {"a": 1, "b": 2})
    response = viewer.get(STATS)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    data = response.json()
    assert [q["name"] for q in data["queues"]] == list(get_config().queues)
    email = data["queues"][0]
    assert email["counts"] == {**get_queue("email").get_job_counts(), "rate_limited": 0}
    assert len(email["completed"]["per_minute"]) == 60
    assert "<svg" in email["html"]["chart"]
    assert "no worker" in email["html"]["health"]

    one = viewer.get(STATS, {"queue": "email"}).json()
    assert [q["name"] for q in one["queues"]] == ["email"]
    assert one["progress"] == {}
    assert viewer.get(STATS, {"queue": "nope"}).status_code == 404


def test_dashboard__view_only_staff_see_no_action_buttons(viewer: Client, manager: Client) -> None:
    """Show the action buttons to managers only; view-only staff see the same numbers."""
    get_queue("notifications").add(fail_with, {"key": "k", "error": "x"}, attempts=1)
    run_burst("notifications")
    for url in (DASHBOARD, queue_url("notifications") + "?state=failed"):
        assert "data-action=" not in page(viewer.get(url))
        assert "<form" not in page(viewer.get(url)).split('id="content-main"')[1]
        managed = page(manager.get(url))
        assert 'data-action="pause"' in managed
    managed = page(manager.get(queue_url("notifications") + "?state=failed"))
    for action in ("retry", "retry-all", "clean", "drain", "pause", "resume"):
        assert f'data-action="{action}"' in managed


def test_dashboard__actions_refused_without_manage(viewer: Client) -> None:
    """Refuse every action with 403 to staff who may only view, and change nothing."""
    email = get_queue("email")
    email.add(add, {"a": 1, "b": 2})
    for action, data in (("pause", {}), ("resume", {}), ("retry", {}), ("drain", {"confirm": "yes"}),
                         ("clean", {"state": "waiting", "age": 0, "unit": "seconds", "limit": 10, "confirm": "yes"})):
        assert viewer.post(action_url("email", action), data).status_code == 403, action
    assert not email.is_paused()
    assert email.get_job_counts()["waiting"] == 1


def test_dashboard__actions_refuse_get(manager: Client) -> None:
    """Answer 405 to a GET on any action, even for a manager, and change nothing."""
    for action in ("pause", "resume", "retry", "clean", "drain", "run_scheduler", "remove_scheduler"):
        response = manager.get(action_url("email", action))
        assert response.status_code == 405, action
        assert response["Allow"] == "POST"
    assert not get_queue("email").is_paused()


def test_dashboard__actions_need_the_csrf_token() -> None:
    """Refuse a POST without the CSRF token."""
    user = User.objects.create_user("csrf", password="pw", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(action_url("email", "pause")).status_code == 403
    assert not get_queue("email").is_paused()
    email = get_queue("email")
    email.upsert_job_scheduler("digest", "tests.record", {"key": "k", "value": "v"}, every=3600)
    for action, data in (("run_scheduler", {"scheduler_id": "digest"}),
                         ("remove_scheduler", {"scheduler_id": "digest", "confirm": "yes"})):
        assert client.post(action_url("email", action), data).status_code == 403, action
    assert email.get_job_scheduler("digest") is not None and email.get_job_counts()["waiting"] == 0


def test_dashboard__unknown_queue_or_action_is_404(manager: Client) -> None:
    """Answer 404 for a queue not in QUEUES, and for an action that does not exist."""
    assert manager.get(queue_url("nope")).status_code == 404
    assert manager.post(action_url("nope", "pause")).status_code == 404
    assert manager.post(action_url("email", "obliterate")).status_code == 404


@pytest.fixture
def acl_user(redis_client: redis.Redis) -> Iterator[tuple[str, str]]:
    """A user with a password on the session's server (its default user stays open for the other tests)."""
    user, password = "dashboard", "s3cret-Pa55word"
    redis_client.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                             commands=["+@all"])
    try:
        yield user, password
    finally:
        redis_client.acl_deluser(user)


def test_dashboard__never_shows_the_password(admin_client: Client, redis_server: RedisServer,
                                             acl_user: tuple[str, str]) -> None:
    """Show host:port/db but never the Redis user's password, with the password right, wrong, or in a URL."""
    user, password = acl_user
    get_queue("email").add(add, {"a": 1, "b": 2})
    forms = [
        {"URL": f"redis://{user}:{password}@127.0.0.1:{redis_server.port}/0"},
        {"HOST": "127.0.0.1", "PORT": redis_server.port, "USERNAME": user, "PASSWORD": password},
    ]
    for config in forms:
        with override_settings(QUEUES_REDIS=config):
            for url in (DASHBOARD, queue_url("email"), STATS):
                html = page(admin_client.get(url))
                assert password not in html
                assert f"127.0.0.1:{redis_server.port}/0" in html or url == STATS
            assert '<td class="queues-num" data-count="waiting">1</td>' in page(admin_client.get(DASHBOARD))
    wrong = password + "-wrong"
    with override_settings(QUEUES_REDIS={"URL": f"redis://{user}:{wrong}@127.0.0.1:{redis_server.port}/0",
                                         "RETRIES": 0}):
        html = page(admin_client.get(DASHBOARD))
        assert f"Redis at 127.0.0.1:{redis_server.port}/0 could not be reached" in html
        assert "AuthenticationError" in html
        assert wrong not in html and password not in html
        response = admin_client.get(STATS)
        assert response.status_code == 503
        assert wrong not in response.content.decode()


def test_dashboard__queue_page_lists_jobs_by_state(manager: Client) -> None:
    """List failed jobs with their error and traceback, delayed ones with when due, prioritized ones with their
    priority; link each to django-rq's job page."""
    email, notifications = get_queue("email"), get_queue("notifications")
    failed = notifications.add(fail_with, {"key": "k", "error": "x"}, attempts=1)
    run_burst("notifications")
    delayed = email.add(add, {"a": 1, "b": 2}, delay=3600)
    prioritized = email.add(add, {"a": 1, "b": 2}, priority=7)

    html = page(manager.get(queue_url("notifications"), {"state": "failed"}))
    assert "RuntimeError: this may succeed next time" in html
    assert "<summary>Traceback</summary>" in html
    assert "Traceback (most recent call last)" in html
    job_url = reverse("django_rq:job_detail", args=[get_queues_map()["notifications"], failed.id])
    assert f'<a href="{job_url}">{failed.id}</a>' in html
    assert manager.get(job_url).status_code == 200  # staff may open django-rq's page of the job

    html = page(manager.get(queue_url("email"), {"state": "delayed"}))
    assert f"{delayed.id}</a>" in html
    due = datetime.fromtimestamp(get_queue("email").connection.zscore("rq:scheduled:email", delayed.id), UTC)
    assert f'<time datetime="{due.isoformat()}">{due:%Y-%m-%d %H:%M:%S}</time> (59\xa0minutes from now)' in html
    html = page(manager.get(queue_url("email"), {"state": "prioritized"}))
    assert f"{prioritized.id}</a>" in html
    assert '<td class="queues-num">7</td>' in html


def test_dashboard__queue_page_is_paginated(viewer: Client) -> None:
    """List one page of 20 jobs at most, with links to the next pages."""
    email = get_queue("email")
    jobs = email.add_bulk([{"job": add, "data": {"a": n, "b": 0}} for n in range(45)])
    first = page(viewer.get(queue_url("email"), {"state": "waiting"}))
    assert first.count("<tr data-job=") == 20
    assert "page 1 of 3 (45 waiting jobs)" in first
    assert f"{jobs[0].id}</a>" in first and f"{jobs[20].id}</a>" not in first
    last = page(viewer.get(queue_url("email"), {"state": "waiting", "page": 3}))
    assert last.count("<tr data-job=") == 5
    assert f"{jobs[44].id}</a>" in last
    assert page(viewer.get(queue_url("email"), {"state": "waiting", "page": 99})).count("<tr data-job=") == 5


def test_dashboard__queue_page_opens_on_the_first_state_with_jobs(viewer: Client) -> None:
    """Open a queue page on the first tab, in the page's order, that has jobs; on "active" when none has; on the
    state asked for whenever one is asked for, even an empty one."""
    email = get_queue("email")
    assert viewer.get(queue_url("email")).context["state"] == "active"
    email.add(add, {"a": 1, "b": 1}, delay=3600)
    assert viewer.get(queue_url("email")).context["state"] == "delayed"
    email.add(add, {"a": 1, "b": 1}, priority=2)
    html = page(response := viewer.get(queue_url("email")))
    assert response.context["state"] == "prioritized"
    assert '<a href="?state=prioritized" class="selected" aria-current="page">' in html
    assert '<table id="result_list" class="queues-table queues-jobs" data-state="prioritized">' in html
    assert html.count("<tr data-job=") == 1
    for asked in ("active", "failed", "delayed"):
        assert viewer.get(queue_url("email"), {"state": asked}).context["state"] == asked
    assert viewer.get(queue_url("email"), {"state": "bogus"}).context["state"] == "prioritized"


def test_dashboard__retry_comes_back_to_the_failed_tab(manager: Client) -> None:
    """Bring a manager who retried a job from a queue page opened on its failed tab back to that tab, not to the
    tab the retried job now makes the first with jobs."""
    notifications = get_queue("notifications")
    jobs = [notifications.add(fail_with, {"key": "k", "error": "x"}, attempts=1) for _ in range(2)]
    run_burst("notifications")
    response = manager.get(queue_url("notifications"))
    assert response.context["state"] == "failed"
    back = f"{queue_url('notifications')}?state=failed&amp;page=1"
    assert f'<input type="hidden" name="next" value="{back}">' in page(response)
    response = manager.post(action_url("notifications", "retry"), {"job_id": jobs[0].id,
                                                                    "next": back.replace("&amp;", "&")}, follow=True)
    assert response.redirect_chain == [(back.replace("&amp;", "&"), 302)]
    assert response.context["state"] == "failed"


def _retry_all_form(html: str) -> str:
    """The opening tag of the form that holds the "Retry all failed" button."""
    before = html.split('data-action="retry-all"')[0]
    return before[before.rindex("<form"):].split(">", 1)[0]


def test_dashboard__retry_all_hidden_without_failed_jobs(manager: Client) -> None:
    """Hide "Retry all failed" while the queue has no failed job (the live refresh shows it when one fails)."""
    notifications = get_queue("notifications")
    notifications.add(note, {"key": "k", "value": "v"})
    run_burst("notifications")
    form = _retry_all_form(page(manager.get(queue_url("notifications"))))
    assert form.endswith(" hidden"), form
    assert "data-when-failed" in form
    notifications.add(fail_with, {"key": "k", "error": "x"}, attempts=1)
    run_burst("notifications")
    form = _retry_all_form(page(manager.get(queue_url("notifications"))))
    assert "data-when-failed" in form
    assert "hidden" not in form, form


def test_dashboard__active_jobs_show_their_progress(viewer: Client, redis_client: redis.Redis) -> None:
    """Show a running job's progress as a bar, and serve it to the live refresh."""
    handle = get_queue("email").add(slow, {"key": "slow", "seconds": 20})
    with worker_process("rqworker", "email") as proc:
        wait_for(lambda: redis_client.lrange("slow", 0, -1) == [b"started"], 30, "the job to start", proc)
        handle.update_progress(40)
        html = page(viewer.get(queue_url("email")))
        assert f'<tr data-job="{handle.id}">' in html
        assert '<progress max="100" value="40">' in html
        assert viewer.get(STATS, {"queue": "email"}).json()["progress"] == {handle.id: 40}
        proc.kill()


def test_dashboard__pause_and_resume(manager: Client) -> None:
    """Pause and resume a queue, and come back to the page with a success message."""
    email = get_queue("email")
    response = manager.post(action_url("email", "pause"), {"next": DASHBOARD}, follow=True)
    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert email.is_paused()
    assert any("paused" in m for m in flashed(response))
    response = manager.post(action_url("email", "resume"), follow=True)
    assert response.redirect_chain == [(queue_url("email"), 302)]
    assert not email.is_paused()
    assert "Queue “email” resumed." in flashed(response)
    response = manager.post(action_url("email", "pause"), {"next": "https://elsewhere.example/"})
    assert response["Location"] == queue_url("email")


def test_dashboard__retry_one_and_all_failed(manager: Client) -> None:
    """Retry one failed job, then all the others: they go back to waiting and run again."""
    notifications = get_queue("notifications")
    jobs = [notifications.add(fail_with, {"key": "k", "error": "x"}, attempts=1) for _ in range(3)]
    run_burst("notifications")
    assert notifications.get_job_counts()["failed"] == 3

    response = manager.post(action_url("notifications", "retry"), {"job_id": jobs[0].id}, follow=True)
    assert f"Job {jobs[0].id} moved back to waiting." in flashed(response)
    assert jobs[0].get_state() == "waiting"
    assert notifications.get_job_counts()["failed"] == 2

    response = manager.post(action_url("notifications", "retry"), follow=True)
    assert "2 failed job(s) of “notifications” moved back to waiting." in flashed(response)
    assert [job.get_state() for job in jobs] == ["waiting"] * 3

    response = manager.post(action_url("notifications", "retry"), {"job_id": jobs[0].id}, follow=True)
    assert f"Job {jobs[0].id} is waiting: only failed or completed jobs can be retried." in flashed(response)
    response = manager.post(action_url("notifications", "retry"), {"job_id": "no-such-job"}, follow=True)
    assert "Job no-such-job is not in queue “notifications” any more." in flashed(response)


def test_dashboard__clean_asks_first_then_removes_old_jobs(manager: Client, redis_client: redis.Redis) -> None:
    """Ask for confirmation before cleaning; on "yes", remove the completed jobs older than the age given."""
    email = get_queue("email")
    jobs = [email.add(add, {"a": n, "b": 1}) for n in range(3)]
    run_burst("email")
    assert email.get_job_counts()["completed"] == 3
    form = {"state": "completed", "age": 0, "unit": "seconds", "limit": 2}

    response = manager.post(action_url("email", "clean"), form)
    html = page(response)
    assert ("Remove 2 of the 3 completed job(s) of “email” older than 0 seconds (the limit: the 2 whose retention "
            "runs out first)?") in html
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert email.get_job_counts()["completed"] == 3

    response = manager.post(action_url("email", "clean"), {**form, "confirm": "yes"}, follow=True)
    assert "Removed 2 completed job(s) older than 0 seconds from “email”." in flashed(response)
    assert email.get_job_counts()["completed"] == 1
    assert sum(redis_client.exists(f"rq:job:{job.id}") for job in jobs) == 1

    response = manager.post(action_url("email", "clean"), {**form, "age": 1, "unit": "days", "confirm": "yes"},
                            follow=True)
    assert "Removed 0 completed job(s) older than 1 day from “email”." in flashed(response)
    response = manager.post(action_url("email", "clean"), {**form, "state": "active", "confirm": "yes"}, follow=True)
    assert any(m.startswith("Nothing cleaned: state:") for m in flashed(response))
    assert email.get_job_counts()["completed"] == 1


def test_dashboard__clean_confirmation_counts_the_jobs_it_removes(manager: Client,
                                                                 redis_client: redis.Redis) -> None:
    """Say exactly how many jobs a clean removes: those older than the age given, or the limit when more are;
    clean nothing and say so when none is old enough."""
    email = get_queue("email")
    jobs = email.add_bulk([{"job": add, "data": {"a": n, "b": 0}} for n in range(5)])
    long_ago = utcformat(datetime.now(UTC) - timedelta(hours=3))
    for job in jobs[1:4]:
        redis_client.hset(f"rq:job:{job.id}", "created_at", long_ago)
    form = {"state": "waiting", "age": 2, "unit": "hours", "limit": 1000}

    html = page(manager.post(action_url("email", "clean"), form))
    assert "Remove the 3 waiting job(s) of “email” older than 2 hours? Their data and results" in html
    assert "up to" not in html and "of the 5" not in html

    html = page(manager.post(action_url("email", "clean"), {**form, "limit": 2}))
    assert ("Remove 2 of the 3 waiting job(s) of “email” older than 2 hours (the limit: the 2 next in line)?"
            in html)
    response = manager.post(action_url("email", "clean"), {**form, "limit": 2, "confirm": "yes"}, follow=True)
    assert "Removed 2 waiting job(s) older than 2 hours from “email”." in flashed(response)
    assert [job.id for job in email.get_jobs("waiting")] == [jobs[0].id, jobs[3].id, jobs[4].id]

    response = manager.post(action_url("email", "clean"), {**form, "state": "completed"}, follow=True)
    assert response.redirect_chain == [(queue_url("email"), 302)]
    assert "Nothing to clean: no completed job of “email” is older than 2 hours." in flashed(response)


def test_clean_question__thousands_and_the_limit() -> None:
    """Write counts with thousands separators, and name the limit only when it leaves jobs behind."""
    from queues.views import clean_question

    assert clean_question("email", "completed", "1 hour", older=1500, limit=1000) == (
        "Remove 1,000 of the 1,500 completed job(s) of “email” older than 1 hour (the limit: the 1,000 whose "
        "retention runs out first)? Their data and results are deleted for good.")
    assert clean_question("email", "delayed", "1 day", older=1000, limit=1000) == (
        "Remove the 1,000 delayed job(s) of “email” older than 1 day? Their data and results are deleted for good.")
    assert clean_question("email", "prioritized", "5 minutes", older=3, limit=2).startswith(
        "Remove 2 of the 3 prioritized job(s) of “email” older than 5 minutes (the limit: the 2 next in line)?")
    assert "(the limit: the 10 due first)?" in clean_question("email", "delayed", "1 day", older=11, limit=10)


def test_dashboard__drain_asks_first_then_removes_waiting_jobs(manager: Client) -> None:
    """Ask for confirmation before draining; on "yes", remove waiting and prioritized jobs, delayed ones only when
    asked."""
    email = get_queue("email")
    for n in range(4):
        email.add(add, {"a": n, "b": 1})
    email.add(add, {"a": 1, "b": 1}, priority=2)
    email.add(add, {"a": 1, "b": 1}, delay=3600)

    html = page(manager.post(action_url("email", "drain")))
    assert "Remove all 5 waiting and prioritized job(s) of “email”?" in html
    assert email.get_job_counts()["waiting"] == 4

    response = manager.post(action_url("email", "drain"), {"confirm": "yes"}, follow=True)
    assert "Drained “email”: 5 job(s) removed." in flashed(response)
    counts = email.get_job_counts()
    assert (counts["waiting"], counts["prioritized"], counts["delayed"]) == (0, 0, 1)

    html = page(manager.post(action_url("email", "drain"), {"include_delayed": "on"}))
    assert "Remove all 1 waiting, prioritized and delayed job(s)" in html
    response = manager.post(action_url("email", "drain"), {"include_delayed": "on", "confirm": "yes"}, follow=True)
    assert "Drained “email”: 1 job(s) removed." in flashed(response)
    assert email.get_job_counts()["delayed"] == 0


def test_dashboard__backlog_sampled_once_a_minute(viewer: Client, redis_client: redis.Redis) -> None:
    """Keep one backlog sample per minute per queue, capped and expiring, however often the page is read."""
    get_queue("email").add(add, {"a": 1, "b": 2})
    _, now = within_one_minute(lambda: [viewer.get(STATS) for _ in range(3)])
    samples = [sample.decode() for sample in redis_client.lrange(backlog_key("email"), 0, -1)]  # newest first
    assert samples[0] == f"{now}:1"
    # One per minute: a single one, or one more when the minute turned during the reads and they ran again.
    minutes = [sample.split(":")[0] for sample in samples]
    assert len(minutes) == len(set(minutes)), samples
    assert 0 < redis_client.ttl(backlog_key("email")) <= 3600


def test_health_marks__rules() -> None:
    """Mark a queue with no worker, with more failures in the last 5 minutes than the 5 before, and with more jobs
    waiting than 5 to 15 minutes ago."""
    quiet = [0] * 60
    assert health_marks(workers=1, failed_per_minute=quiet, backlog=0, samples=[], now_minute=100) == []
    assert health_marks(workers=0, failed_per_minute=quiet, backlog=0, samples=[], now_minute=100) == ["no worker"]
    rising = [0] * 50 + [1] * 5 + [2] * 5
    falling = [0] * 50 + [2] * 5 + [1] * 5
    assert health_marks(workers=1, failed_per_minute=rising, backlog=0, samples=[], now_minute=100) == [
        "failures rising"]
    assert health_marks(workers=1, failed_per_minute=falling, backlog=0, samples=[], now_minute=100) == []
    samples = [(100, 50), (97, 40), (95, 30), (80, 99)]
    assert health_marks(workers=1, failed_per_minute=quiet, backlog=50, samples=samples, now_minute=100) == [
        "backlog growing"]
    assert health_marks(workers=1, failed_per_minute=quiet, backlog=30, samples=samples, now_minute=100) == []
    assert health_marks(workers=1, failed_per_minute=quiet, backlog=50, samples=samples[:2], now_minute=100) == []



def test_chart__bars_stacked_and_scaled() -> None:
    """Draw one bar per minute with jobs, failed stacked on completed, the busiest minute filling the height."""
    drawn = chart([0] * 58 + [3, 1], [0] * 59 + [1])
    assert drawn["max"] == 3
    assert drawn["bars"] == [
        {"x": 58, "y": "0.00", "h": "20.00", "kind": "completed", "n": 3},
        {"x": 59, "y": "13.33", "h": "6.67", "kind": "completed", "n": 1},
        {"x": 59, "y": "6.67", "h": "6.67", "kind": "failed", "n": 1},
    ]
    assert chart([0] * 60, [0] * 60) == {"bars": [], "max": 1}


@pytest.mark.parametrize(("config", "shown"), [
    ({"URL": "rediss://user:pw-1@redis.example:6380/2"}, "redis.example:6380/2 (TLS)"),
    ({"URL": "redis://:pw-1@10.0.0.5:6379"}, "10.0.0.5:6379/0"),
    ({"URL": "unix:///run/redis.sock?db=3&password=pw-1"}, "unix:/run/redis.sock db 3"),
    ({"HOST": "cache", "PORT": 6390, "DB": 1, "SSL": True, "USERNAME": "app", "PASSWORD": "pw-1"},
     "cache:6390/1 (TLS)"),
])
def test_connection_label__host_port_db_and_tls_never_credentials(config: dict, shown: str) -> None:
    """Name the server as host:port/db (or its socket), say when it is TLS, and leave out user and password."""
    with override_settings(QUEUES_REDIS=config):
        assert connection_label() == shown


# --- job schedulers on the queue page ----------------------------------------------------------------------------

def test_dashboard__queue_page_lists_its_schedulers_with_next_and_last_run(viewer: Client) -> None:
    email = get_queue("email")
    email.upsert_job_scheduler("digest", "tests.record", {"key": "k", "value": "v"}, pattern="0 9 * * *",
                               tz="Europe/Berlin", limit=30)
    html = page(viewer.get(queue_url("email")))
    row = html.split('<tr data-scheduler="digest">')[1].split("</tr>")[0]
    assert "tests.record" in row and "cron &#x27;0 9 * * *&#x27; (Europe/Berlin)" in row
    nxt = email.get_job_scheduler("digest")["next"]
    assert f'<time datetime="{nxt.isoformat()}' in row or nxt.strftime("%Y-%m-%d") in row
    assert "—" in row and "0 / 30" in row  # no run yet
    assert "data-action=" not in row  # view-only staff: no buttons
    assert "Job schedulers" not in page(viewer.get(queue_url("notifications")))  # none there: no table


def scheduler_row(client: Client, scheduler_id: str) -> str:
    return page(client.get(queue_url("email"))).split(f'<tr data-scheduler="{scheduler_id}">')[1].split("</tr>")[0]


def test_dashboard__run_now_and_remove_a_scheduler(manager: Client, viewer: Client) -> None:
    email = get_queue("email")
    email.upsert_job_scheduler("digest", "tests.record", {"key": "k", "value": "v"}, every=3600)
    row = page(manager.get(queue_url("email"))).split('<tr data-scheduler="digest">')[1].split("</tr>")[0]
    assert 'data-action="run-scheduler"' in row and 'data-action="remove-scheduler"' in row

    assert viewer.post(action_url("email", "run_scheduler"), {"scheduler_id": "digest"}).status_code == 403
    assert manager.get(action_url("email", "run_scheduler")).status_code == 405
    response = manager.post(action_url("email", "run_scheduler"), {"scheduler_id": "digest"}, follow=True)
    assert "one run added now" in " ".join(flashed(response))
    assert email.get_job_counts()["waiting"] == 1 and email.get_job_counts()["delayed"] == 1
    assert "<td>—</td>" in scheduler_row(manager, "digest")  # no run yet
    with signals_restored():
        SimpleWorker(["email"]).work(burst=True)  # runs the "run now" job (the next tick is an hour away)
    row = scheduler_row(manager, "digest")
    last = email.get_job_scheduler("digest")["last"]
    assert last is not None and f'<time datetime="{last.isoformat()}' in row
    assert '<td class="queues-num">0</td>' in row  # "run now" is not a tick: the count of runs is unchanged

    assert viewer.post(action_url("email", "remove_scheduler"),
                       {"scheduler_id": "digest", "confirm": "yes"}).status_code == 403
    question = page(manager.post(action_url("email", "remove_scheduler"), {"scheduler_id": "digest"}))
    assert "Remove the job scheduler “digest” (tests.record, every 3600 s) and its pending run?" in question
    assert email.get_job_scheduler("digest") is not None  # asked, not done
    response = manager.post(action_url("email", "remove_scheduler"), {"scheduler_id": "digest", "confirm": "yes"},
                            follow=True)
    assert "removed, with its pending run" in " ".join(flashed(response))
    assert email.get_job_scheduler("digest") is None and email.get_job_counts()["delayed"] == 0
    response = manager.post(action_url("email", "run_scheduler"), {"scheduler_id": "digest"}, follow=True)
    assert "has no job scheduler 'digest'" in " ".join(flashed(response))
