"""Secrets stay off error pages and reports, and the token-protected metrics answer while real workers run.

- Django's technical 500 page (``DJANGO_DEBUG=true``), its plain-text variant and the error email to ``ADMINS``
  show settings, ``request.META`` (which holds the environment under ``runserver``) and every frame's locals:
  the Redis, database and email passwords and ``RQ_API_TOKEN`` must show as ``********************`` there
  (config/reporting.py).
- ``/queues/metrics`` and django-rq's ``metrics`` / ``stats.json`` build a worker object per registered
  ``rqworker`` process (``Worker.all()``): they must answer with the workers counted.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import django_rq
import pytest
import redis
from django.conf import settings
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path, reverse
from django.utils.log import AdminEmailHandler

from config.redis_server import RedisServer, free_port
from queues import get_queue
from tests.conftest import manage_env
from tests.helpers import output, wait_for
from tests.testapp import jobs

MASK = "********************"
REDIS_SECRET = "redis-pw-7Qx2Lk9vTz"  # noqa: S105 - the secrets the pages must not show
DB_SECRET = "db-pw-4Hn8Wq1RsEe"  # noqa: S105
EMAIL_SECRET = "mail-pw-9Zt3Yp6UcB"  # noqa: S105
API_TOKEN = "api0token0" + "5d1e9c27b84f0a36e1d2c4b7a9f80e13"  # noqa: S105
SECRETS = (REDIS_SECRET, DB_SECRET, EMAIL_SECRET, API_TOKEN)


def fail_holding_the_redis_settings(request: HttpRequest) -> HttpResponse:
    """Fail with the Redis URL, password and API token in locals and in the exception message."""
    redis_config = settings.QUEUES_REDIS
    url = redis_config["URL"]
    password = redis_config["PASSWORD"]
    client = redis.Redis.from_url(url)
    token = settings.RQ_API_TOKEN
    assert client and password and token
    raise RuntimeError(f"cannot use {url}")


def fail_in_django_rq(request: HttpRequest) -> HttpResponse:
    """Fail in django-rq and redis-py (Redis refuses the password), RQ_QUEUES' entry for the queue in locals."""
    rq_config = settings.RQ_QUEUES["email"]
    assert rq_config["URL"]
    return HttpResponse(django_rq.get_queue("email").count)


urlpatterns = [
    path("fail", fail_holding_the_redis_settings),
    path("fail-in-django-rq", fail_in_django_rq),
    path("", include("config.urls")),
]


def environment(redis_url: str) -> dict[str, str]:
    """The secret-bearing variables a deployment sets; ``runserver`` passes the environment on in request.META."""
    return {
        "REDIS_URL": redis_url,
        "REDIS_PASSWORD": REDIS_SECRET,
        "DATABASE_URL": f"postgres://app:{DB_SECRET}@db.internal:5432/app",
        "EMAIL_URL": f"smtp+tls://mailer:{EMAIL_SECRET}@smtp.internal:587",
        "RQ_API_TOKEN": API_TOKEN,
    }


def assert_no_secret(page: str) -> None:
    for secret in SECRETS:
        assert secret not in page, f"{secret!r} is on the page:\n{page[max(0, page.find(secret) - 300):][:600]}"
    assert MASK in page


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own whose password is not REDIS_SECRET: it refuses the settings' password."""
    server = RedisServer(tmp_path / "guarded-redis", password="the-real-one-" + "x" * 20).start()  # noqa: S106
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def secret_settings(guarded_redis: RedisServer) -> Iterator[str]:
    """Settings holding every secret, with a Redis password the server refuses; the Redis URL."""
    url = f"redis://:{REDIS_SECRET}@127.0.0.1:{guarded_redis.port}/0"
    with override_settings(ROOT_URLCONF=__name__, DEBUG=True, DEBUG_PROPAGATE_EXCEPTIONS=False,
                           QUEUES_REDIS={"URL": url, "PASSWORD": REDIS_SECRET, "RETRIES": 0},
                           EMAIL_HOST_PASSWORD=EMAIL_SECRET, RQ_API_TOKEN=API_TOKEN):
        yield url


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
@pytest.mark.parametrize("page", ["/fail", "/fail-in-django-rq", "/queues/metrics"])
def test_debug_page__hides_passwords_and_api_token(secret_settings: str, page: str, accept: str) -> None:
    """Mask the Redis, database and email passwords and RQ_API_TOKEN on the DEBUG 500 page (HTML and text): in
    settings, request.META, frame locals and the exception message."""
    client = Client(raise_request_exception=False)
    response = client.get(page, headers={"Accept": accept, "Authorization": f"Bearer {API_TOKEN}"},
                          **environment(secret_settings))
    assert response.status_code == 500
    body = response.content.decode()
    assert "Traceback" in body  # the technical page, with its frames, settings and META
    assert "REDIS_URL" in body and "QUEUES_REDIS" in body
    assert_no_secret(body)
    assert f"redis://:{MASK}@127.0.0.1" in body  # the URL is still there, only its password is hidden


@pytest.mark.django_db
def test_error_email__hides_passwords_and_api_token(secret_settings: str) -> None:
    """Mask the secrets in the error reports mailed to ADMINS with DEBUG off: the text one Django's logging sends,
    and one with the HTML page attached (frame locals)."""
    with_html = AdminEmailHandler(include_html=True)
    logging.getLogger("django.request").addHandler(with_html)
    try:
        with override_settings(DEBUG=False, ADMINS=[("Ops", "ops@example.com")]):
            response = Client(raise_request_exception=False).get("/fail", **environment(secret_settings))
    finally:
        logging.getLogger("django.request").removeHandler(with_html)
    assert response.status_code == 500
    assert len(mail.outbox) == 2
    for email in mail.outbox:
        assert "QUEUES_REDIS" in email.body and "Traceback" in email.body
        assert_no_secret(email.body)
    html = next(content for email in mail.outbox for content, kind in email.alternatives if kind == "text/html")
    assert "fail_holding_the_redis_settings" in html and "redis_config" in html  # the view's frame and locals
    assert_no_secret(html)


def test_runserver_debug_page__hides_secrets_from_the_environment(workers, guarded_redis: RedisServer,
                                                                  tmp_path: Path) -> None:
    """Mask the secrets a real `runserver` (DJANGO_DEBUG=true) got from its environment on its 500 page.

    Redis refuses the password, so /queues/metrics fails with redis-py's frames on the page. (The database is a
    SQLite file here, as `runserver` checks migrations at start: the DATABASE_URL password is covered above.)
    """
    port = free_port()
    env = {k: v for k, v in manage_env().items() if not k.startswith(("REDIS_", "DJANGO_", "PYTEST_"))}
    env.update(environment(f"redis://:{REDIS_SECRET}@127.0.0.1:{guarded_redis.port}/0"),
               DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="true",
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    server = workers.start("runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}", env=env)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/queues/metrics",
                                     headers={"Authorization": f"Bearer {API_TOKEN}", "Accept": "text/html"})

    def fetch() -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own server
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return None  # not listening yet

    answers: list[tuple[int, str]] = []
    wait_for(lambda: answers.append(fetch()) or answers[-1], 60, "runserver to answer", server)
    status, body = answers[-1]
    assert status == 500, f"{status}\n{body[:2000]}\n{output(server)}"
    assert "AuthenticationError" in body and "EMAIL_URL" in body and "RQ_API_TOKEN" in body
    assert_no_secret(body)
    assert_no_secret(output(server) + MASK)  # nor in what it logged


# --- metrics while workers run ------------------------------------------------------------------------------


def metric_lines(body: str, name: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith(name + "{")]


@pytest.mark.django_db(transaction=True)  # add() inside a test transaction would wait for a commit
def test_metrics__answer_while_rqworker_processes_run(workers, redis_client: redis.Redis, admin_client: Client,
                                                     client: Client) -> None:
    """Serve /queues/metrics and django-rq's metrics, stats.json and dashboard, to the bearer and to staff, while
    two real `rqworker` processes are registered, with both workers and the queues' counts in them."""
    procs = [workers.start("rqworker", "email"), workers.start("rqworker", "notifications")]
    wait_for(lambda: redis_client.scard("rq:workers:email") and redis_client.scard("rq:workers:notifications"), 60,
             "a worker registered for each queue", procs)
    get_queue("limited").add(jobs.limited_start, {"key": "metrics"})  # waiting: no worker serves it
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}

    with override_settings(RQ_API_TOKEN=API_TOKEN):
        for who, requester, headers in (("bearer", client, bearer), ("staff", admin_client, {})):
            response = requester.get(reverse("queues-metrics"), headers=headers)
            assert response.status_code == 200, (who, response.content[:2000])
            body = response.content.decode()
            assert len(metric_lines(body, "rq_workers")) == redis_client.scard("rq:workers"), body
            assert any('queues="email"' in line for line in metric_lines(body, "rq_workers")), body
            assert 'queues_jobs{queue="limited",state="waiting"} 1.0' in body

            # django-rq's own collector: both workers listed. Read again for a few seconds: one CI run once listed
            # only the first worker here (not reproduced since; both are registered before this point).
            seen: list[str] = []

            def lists_both(requester: Client = requester, headers: dict = headers, who: str = who,
                           seen: list[str] = seen) -> bool:
                response = requester.get(reverse("django_rq:metrics"), headers=headers)
                assert response.status_code == 200, (who, response.content[:2000])
                seen[:] = metric_lines(response.content.decode(), "rq_workers")
                return all(any(f'queues="{queue}"' in line for line in seen) for queue in ("email", "notifications"))

            wait_for(lists_both, 10, f"django-rq's metrics to list both workers (last: {seen})")

            response = requester.get(reverse("django_rq:home_json"), headers=headers)
            assert response.status_code == 200, (who, response.content[:2000])
            stats = {queue["name"]: queue for queue in json.loads(response.content)["queues"]}
            assert stats["email"]["workers"] == 1 and stats["notifications"]["workers"] == 1, stats
            assert stats["limited"]["workers"] == 0 and stats["limited"]["jobs"] == 1

        assert admin_client.get(reverse("django_rq:home")).status_code == 200
        assert client.get(reverse("queues-metrics")).status_code == 401
    assert all(proc.poll() is None for proc in procs), [output(proc) for proc in procs]
