"""The admin dashboard in a real headless Chromium (Debian's, driven by Playwright), against the live server, the
session's Redis and real worker processes. Screenshots go to ``test-artifacts/dashboard/``.

Without Chromium these tests are skipped, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.contrib.auth.models import Permission, User

from queues import get_queue
from queues.worker import SimpleWorker
from tests.conftest import ROOT
from tests.helpers import signals_restored, wait_for, worker_process
from tests.testapp.jobs import add, fail_with, long_first_run, note, slow

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
DASHBOARD = "/admin/queues/queue/"
WAIT_MS = 30_000

pytestmark = pytest.mark.django_db(transaction=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests (apt-get install chromium; pip install playwright)")
    pytest.skip(f"{reason}: the dashboard's browser tests need Debian's chromium and playwright")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, launched by Playwright (never a downloaded browser)."""
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not executable:
        _unavailable("chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def fast_refresh(settings) -> None:
    settings.QUEUES_DASHBOARD_REFRESH = 0.5


@pytest.fixture
def new_page(browser, live_server, fast_refresh) -> Iterator:
    """A fresh browser context per user; pages are closed after the test."""
    contexts = []

    def make(username: str, password: str, width: int = 1600):
        context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"/admin/login/?next={DASHBOARD}")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(re.escape(DASHBOARD) + "$"))
        return page

    yield make
    for context in contexts:
        context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def count(page, queue: str, state: str):
    return page.locator(f'[data-queue="{queue}"] [data-count="{state}"]').first  # a queue page has it twice


def flash(page):
    return page.locator("ul.messagelist li")


def test_browser__counts_change_after_a_worker_runs_jobs(new_page, admin_user: User) -> None:
    """See jobs added after the page loaded appear, then complete once a worker runs them, without a reload."""
    from playwright.sync_api import expect

    page = new_page(admin_user.username, "password")
    expect(page.locator('tr[data-queue="notifications"]')).to_be_visible()
    page.evaluate("window.notReloaded = true")
    expect(count(page, "notifications", "completed")).to_have_text("0")

    queue = get_queue("notifications")
    for n in range(5):
        queue.add(note, {"key": "ran", "value": str(n)})
    expect(count(page, "notifications", "waiting")).to_have_text("5")
    shot(page, "01-jobs-waiting")

    with worker_process("rqworker", "notifications"):
        expect(count(page, "notifications", "completed")).to_have_text("5")
        expect(count(page, "notifications", "waiting")).to_have_text("0")
        expect(page.locator('[data-queue="notifications"] [data-field="workers"]')).to_have_text("1")
        expect(page.locator('[data-queue="notifications"] [data-field="health"]')).to_have_text("ok")
        assert page.evaluate("window.notReloaded") is True
        expect(page.locator('[data-queue="notifications"] svg title')).to_contain_text("5 completed, 0 failed")
        shot(page, "02-jobs-completed")


def test_browser__pause_a_queue_and_new_jobs_wait(new_page, redis_client: redis.Redis) -> None:
    """Pause a queue from its row (as staff with only queues.manage): new jobs wait instead of running; resume it
    and they run."""
    from playwright.sync_api import expect

    manager = User.objects.create_user("manager", password="manager-pw", is_staff=True)
    manager.user_permissions.add(Permission.objects.get(content_type__app_label="queues", codename="manage"))
    page = new_page("manager", "manager-pw")
    queue = get_queue("notifications")
    with worker_process("rqworker", "notifications"):
        expect(page.locator('[data-queue="notifications"] [data-field="workers"]')).to_have_text("1")
        page.click('[data-queue="notifications"] [data-action="pause"]')
        expect(flash(page)).to_contain_text("Queue “notifications” paused")
        expect(page.locator('[data-queue="notifications"] [data-state-paused]')).to_be_visible()
        assert queue.is_paused()

        for n in range(3):
            queue.add(note, {"key": "ran", "value": str(n)})
        expect(count(page, "notifications", "waiting")).to_have_text("3")
        time.sleep(2)  # a worker that ignored the pause would have run them by now
        expect(count(page, "notifications", "waiting")).to_have_text("3")
        expect(count(page, "notifications", "completed")).to_have_text("0")
        assert redis_client.llen("ran") == 0
        shot(page, "03-paused-jobs-wait")

        page.click('[data-queue="notifications"] [data-action="resume"]')
        expect(flash(page)).to_contain_text("Queue “notifications” resumed.")
        expect(count(page, "notifications", "completed")).to_have_text("3")
        expect(count(page, "notifications", "waiting")).to_have_text("0")
        assert redis_client.llen("ran") == 3
        shot(page, "04-resumed-jobs-done")


def test_browser__retry_a_failed_job_and_it_completes(new_page, admin_user: User, redis_client: redis.Redis) -> None:
    """Find a failed job with its error on the queue page, retry it, and see it complete."""
    from playwright.sync_api import expect

    page = new_page(admin_user.username, "password")
    # Its first run outlasts its 1 s timeout and fails (one attempt); any later run returns at once.
    job = get_queue("email").add(long_first_run, {"key": "slowpoke", "seconds": 5}, attempts=1, timeout=1)
    with worker_process("rqworker", "email"):
        expect(count(page, "email", "failed")).to_have_text("1")
        page.click('[data-queue="email"] th a')
        page.click("nav.queues-tabs >> text=Failed")
        row = page.locator(f'tr[data-job="{job.id}"]')
        expect(row).to_contain_text("JobTimeoutException")
        row.locator("summary").click()
        expect(row.locator("pre")).to_contain_text("Traceback (most recent call last)")
        shot(page, "05-failed-job")

        row.locator('[data-action="retry"]').click()
        expect(flash(page)).to_contain_text(f"Job {job.id} moved back to waiting.")
        expect(count(page, "email", "completed")).to_have_text("1")
        expect(count(page, "email", "failed")).to_have_text("0")
        expect(page.locator('nav.queues-tabs [data-count="failed"]')).to_have_text("0")
        assert job.get_state() == "completed"
        assert redis_client.lrange("slowpoke:done", 0, -1) == [job.id.encode()]
        shot(page, "06-retried-job-completed")


def test_browser__progress_bar_moves_without_a_reload(new_page, admin_user: User, redis_client: redis.Redis) -> None:
    """Show a running job's progress bar on the queue page, and move it as the job reports progress."""
    from playwright.sync_api import expect

    page = new_page(admin_user.username, "password")
    job = get_queue("email").add(slow, {"key": "slow", "seconds": 30})
    with worker_process("rqworker", "email") as proc:
        wait_for(lambda: redis_client.lrange("slow", 0, -1) == [b"started"], 30, "the job to start", proc)
        page.goto(f"{DASHBOARD}email/?state=active")
        expect(page.locator(f'tr[data-job="{job.id}"]')).to_be_visible()
        page.evaluate("window.notReloaded = true")
        bar = page.locator(f'tr[data-job="{job.id}"] progress')
        expect(bar).to_have_attribute("value", "0")
        job.update_progress(65)
        expect(page.locator(f'tr[data-job="{job.id}"] [data-progress-text]')).to_have_text("65 %")
        assert bar.evaluate("el => el.value") == 65
        assert page.evaluate("window.notReloaded") is True
        shot(page, "07-progress")
        proc.kill()


def test_browser__drain_asks_for_confirmation(new_page, admin_user: User) -> None:
    """Drain a queue from its page: a confirmation page says what goes; "No" keeps the jobs, "Yes" removes them."""
    from playwright.sync_api import expect

    queue = get_queue("email")
    queue.add_bulk([{"job": add, "data": {"a": n, "b": 0}} for n in range(4)])
    queue.add(add, {"a": 1, "b": 1}, delay=3600)
    page = new_page(admin_user.username, "password")
    page.goto(f"{DASHBOARD}email/")
    page.click('[data-action="drain"]')
    expect(page.locator(".queues-question")).to_contain_text("Remove all 4 waiting and prioritized job(s)")
    shot(page, "08-drain-confirmation")
    page.click("text=No, take me back")
    expect(count(page, "email", "waiting")).to_have_text("4")
    assert queue.get_job_counts()["waiting"] == 4

    page.click('[data-action="drain"]')
    page.click('[data-action="confirm"]')
    expect(flash(page)).to_contain_text("Drained “email”: 4 job(s) removed.")
    expect(count(page, "email", "waiting")).to_have_text("0")
    expect(count(page, "email", "delayed")).to_have_text("1")


def test_browser__view_only_user_has_no_buttons_and_is_refused(new_page, redis_client: redis.Redis) -> None:
    """Show a view-only user the numbers without any action button, and refuse their POST with 403."""
    from playwright.sync_api import expect

    viewer = User.objects.create_user("viewer", password="viewer-pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="queues", codename="view_queue"))
    get_queue("email").add(add, {"a": 1, "b": 2})
    page = new_page("viewer", "viewer-pw")
    expect(count(page, "email", "waiting")).to_have_text("1")
    assert page.locator("[data-action]").count() == 0
    assert page.locator("form[method=post]").count() == 1  # the admin's own "Log out" form, nothing else
    page.click('[data-queue="email"] th a')
    expect(page.locator("nav.queues-tabs")).to_be_visible()
    assert page.locator("[data-action]").count() == 0
    shot(page, "09-view-only")

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(f"{DASHBOARD}email/pause/", form={"csrfmiddlewaretoken": token},
                                 headers={"X-CSRFToken": token, "Referer": page.url})
    assert response.status == 403
    assert "CSRF" not in response.text()  # refused for the missing permission, not for the token
    assert not get_queue("email").is_paused()


def test_browser__retry_all_shows_once_a_job_fails(new_page, admin_user: User) -> None:
    """Hide "Retry all failed" while the queue has no failed job, and show it, without a reload, once one fails."""
    from playwright.sync_api import expect

    page = new_page(admin_user.username, "password")
    page.goto(f"{DASHBOARD}notifications/")
    expect(page.locator("nav.queues-tabs")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    retry_all = page.locator('[data-action="retry-all"]')
    expect(retry_all).to_be_hidden()
    expect(page.locator('[data-action="drain"]')).to_be_visible()

    get_queue("notifications").add(fail_with, {"key": "k", "error": "x"}, attempts=1)
    with signals_restored():
        SimpleWorker(["notifications"]).work(burst=True)
    expect(retry_all).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    shot(page, "10-retry-all-shown")


def test_browser__tables_fit_1280px_with_the_sidebar_open(new_page, admin_user: User) -> None:
    """Fit the dashboard's and a queue page's tables in a 1,280 px window beside the admin's open nav sidebar,
    with no horizontal scroll of the page."""
    from playwright.sync_api import expect

    email, notifications = get_queue("email"), get_queue("notifications")
    email.add_bulk([{"job": add, "data": {"a": n, "b": 0}} for n in range(1234)])
    email.add(add, {"a": 1, "b": 1}, priority=3)
    email.add(add, {"a": 1, "b": 1}, delay=3600)
    email.upsert_job_scheduler("weekly-newsletter-digest-for-every-subscriber", "tests.record",
                               {"key": "k", "value": "v"}, pattern="30 2 * * 1", tz="America/Argentina/Buenos_Aires")
    for _ in range(2):
        notifications.add(fail_with, {"key": "k", "error": "x"}, attempts=1)
    notifications.add(note, {"key": "k", "value": "v"})
    with signals_restored():
        SimpleWorker(["notifications"]).work(burst=True)
    notifications.add(note, {"key": "k", "value": "v"})
    notifications.pause()
    notifications.rate_limit(3600)  # "paused" and "rate limited" side by side
    page = new_page(admin_user.username, "password", width=1280)
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'true')")
    overflows = []
    for url, name, tables in (
        (DASHBOARD, "11-fit-1280-dashboard", ["#result_list"]),
        (f"{DASHBOARD}email/?state=waiting", "12-fit-1280-queue", [".queues-summary", "#schedulers table",
                                                                    "#result_list"]),
        (f"{DASHBOARD}notifications/?state=failed", "13-fit-1280-failed", [".queues-summary", "#result_list"]),
    ):
        page.goto(url)
        expect(page.locator("#nav-sidebar")).to_be_visible()
        assert "shifted" in (page.locator("#main").get_attribute("class") or "")
        if "failed" in url:
            page.locator("details summary").first.click()  # a traceback open too
        shot(page, name)
        width = page.evaluate("window.innerWidth")
        assert width == 1280
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            overflows.append(f"{url}: the page scrolls sideways ({scroll_width} px > {width} px)")
        for selector in tables:
            box = page.locator(selector).bounding_box()
            assert box is not None, f"{url}: no {selector}"
            if box["x"] + box["width"] > width:
                overflows.append(f"{url}: {selector} ends at {box['x'] + box['width']:.0f} px")
        jobs, paginator = page.locator(".queues-jobs"), page.locator("#changelist .paginator")
        if jobs.count() and paginator.count():  # the paginator under the jobs, not squeezing them from beside
            assert paginator.bounding_box()["y"] >= jobs.bounding_box()["y"] + jobs.bounding_box()["height"], url
    assert not overflows, "\n".join(overflows)
