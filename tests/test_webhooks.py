"""Webhooks: signed deliveries to a real HTTP server (tests/webhook_receiver.py) by a real worker process, retries
per the answer, the SSRF guard, ``send_event``, the admin's secret and "redeliver" action.

tests/settings.py allows private targets (the receiver listens on 127.0.0.1); the guard's tests turn that off.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import redis
import trustme
import urllib3
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.test import Client, override_settings

import webhooks
from queues import UnrecoverableError, get_queue
from tests.helpers import Workers, wait_for
from tests.webhook_receiver import Receiver
from webhooks import jobs, services, targets, transport
from webhooks.checks import check_settings
from webhooks.conf import Timeout
from webhooks.delivery import parse_retry_after
from webhooks.exceptions import DeliveryFailed, InvalidEvent
from webhooks.models import Delivery, Endpoint, Event
from webhooks.signing import sign, verify_signature

pytestmark = pytest.mark.django_db(transaction=True)

DELIVERIES = "/admin/webhooks/delivery/"
ENDPOINTS = "/admin/webhooks/endpoint/"


def endpoint(url: str, events: tuple[str, ...] = ("order.paid",), *, active: bool = True) -> Endpoint:
    return Endpoint.objects.create(url=url, events=list(events), is_active=active)


def attempts(endpoint_pk: int) -> list[tuple[int, int | None]]:
    return list(Delivery.objects.filter(endpoint_id=endpoint_pk).order_by("attempt")
                .values_list("attempt", "status_code"))


def job_state(event: Event, target: Endpoint) -> str | None:
    handle = get_queue("webhooks").get_job(services.job_id(event.pk, target.pk))
    return handle.get_state() if handle is not None else None


# --- deliveries through a real worker -------------------------------------------------------------------------


def test_deliver__503_then_200_is_retried_and_every_attempt_is_signed(workers: Workers) -> None:
    """Retry a 503 (backoff 2 s), then stop at the 200: two signed POSTs of one body and two Delivery rows."""
    with Receiver([(503, {}), (200, {})]) as receiver:
        target = endpoint(receiver.url)
        proc = workers.start("rqworker", "webhooks")
        assert services.send_event("order.paid", {"order": 7, "total": "12.50"}) == 1
        event = Event.objects.get()
        wait_for(lambda: job_state(event, target) == "completed", 30, "the delivery to complete", proc)

    first, second = receiver.requests
    assert first.body == second.body
    assert json.loads(first.body) == {"id": str(event.pk), "event": "order.paid",
                                      "created_at": event.created_at.astimezone(UTC).isoformat()
                                      .replace("+00:00", "Z"),
                                      "data": {"order": 7, "total": "12.50"}}
    for request in receiver.requests:
        assert request.path == "/hooks"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "django-queues-webhooks/1.0"
        header = request.headers["X-Webhook-Signature"]
        assert verify_signature(target.secret, header, request.body)
        # The same check, written out as a receiver in another language would.
        fields = dict(part.split("=", 1) for part in header.split(","))
        mac = hmac.new(target.secret.encode(), f"{fields['t']}.".encode() + request.body, hashlib.sha256)
        assert hmac.compare_digest(mac.hexdigest(), fields["v1"])
        assert abs(time.time() - int(fields["t"])) < 60
        assert not verify_signature("whsec_wrong", header, request.body)
    assert second.at - first.at >= 2  # the queue's exponential backoff: 2 s before the first retry
    assert attempts(target.pk) == [(1, 503), (2, 200)]
    failed, succeeded = Delivery.objects.filter(endpoint=target).order_by("attempt")
    assert failed.payload_id == succeeded.payload_id == event.pk
    assert failed.error.startswith("The endpoint answered 503 Service Unavailable")
    assert succeeded.error == "" and succeeded.succeeded
    assert target.secret not in failed.error


def test_deliver__410_fails_at_once_without_retry(workers: Workers) -> None:
    """Fail a 410 at once: one POST, one Delivery row, the job failed after one attempt."""
    with Receiver([(410, {})]) as receiver:
        target = endpoint(receiver.url)
        proc = workers.start("rqworker", "webhooks")
        services.send_event("order.paid", {"order": 8})
        event = Event.objects.get()
        wait_for(lambda: job_state(event, target) == "failed", 30, "the delivery to fail", proc)

    assert len(receiver.requests) == 1
    assert attempts(target.pk) == [(1, 410)]
    assert "not retried" in Delivery.objects.get().error
    assert get_queue("webhooks").get_job(services.job_id(event.pk, target.pk)).attempts_made == 1


def test_deliver__429_waits_for_retry_after(workers: Workers) -> None:
    """Retry a 429 after its Retry-After (1 s), then record the 200."""
    with Receiver([(429, {"Retry-After": "1"}), (200, {})]) as receiver:
        target = endpoint(receiver.url)
        proc = workers.start("rqworker", "webhooks")
        services.send_event("order.paid", {"order": 9})
        event = Event.objects.get()
        wait_for(lambda: job_state(event, target) == "completed", 30, "the delivery to complete", proc)

    first, second = receiver.requests
    assert second.at - first.at >= 1
    assert attempts(target.pk) == [(1, 429), (2, 200)]
    assert "retrying after 1 s (Retry-After)" in Delivery.objects.get(attempt=1).error


# --- the outcomes, delivered in-process -------------------------------------------------------------------------


def stored_event() -> Event:
    return Event.objects.create(name="order.paid", data={"order": 1})


def test_deliver__a_redirect_is_not_followed_nor_retried() -> None:
    """Fail a 301 at once, saying redirects are not followed; the Location is never requested."""
    with Receiver([(301, {"Location": "http://127.0.0.1:1/elsewhere"})]) as receiver:
        target, event = endpoint(receiver.url), stored_event()
        with pytest.raises(UnrecoverableError, match="redirects are not followed"):
            jobs.deliver(str(event.pk), target.pk)

    assert len(receiver.requests) == 1
    row = Delivery.objects.get()
    assert (row.status_code, row.attempt) == (301, 1)
    assert "'http://127.0.0.1:1/elsewhere': redirects are not followed" in row.error


def test_deliver__a_read_timeout_is_retried_with_a_row_without_status() -> None:
    """Raise a retryable error when the answer takes longer than the read timeout, and record it."""
    with Receiver(delay=2) as receiver, override_settings(WEBHOOKS_TIMEOUT={"connect": 1, "read": 0.3}):
        target, event = endpoint(receiver.url), stored_event()
        with pytest.raises(DeliveryFailed, match="ReadTimeoutError"):
            jobs.deliver(str(event.pk), target.pk)

    row = Delivery.objects.get()
    assert row.status_code is None and row.error.startswith("ReadTimeoutError")
    assert 300 <= row.duration_ms < 2000


def test_deliver__an_inactive_endpoint_is_skipped() -> None:
    """Send nothing to an endpoint made inactive after its job was added."""
    with Receiver() as receiver:
        target, event = endpoint(receiver.url, active=False), stored_event()
        result = jobs.deliver(str(event.pk), target.pk)

    assert result["skipped"] == "the endpoint is inactive"
    assert receiver.requests == [] and not Delivery.objects.exists()


def test_retry_after_backoff__uses_the_errors_wait_else_exponential() -> None:
    """Wait a 429's Retry-After (capped by WEBHOOKS_MAX_RETRY_AFTER), else delay × 2^(n-1)."""
    assert jobs.retry_after_backoff(1, 2, DeliveryFailed("429", retry_after=7)) == 7
    assert jobs.retry_after_backoff(3, 2, DeliveryFailed("503")) == 8
    assert jobs.retry_after_backoff(2, 2, ValueError("x")) == 4
    with override_settings(WEBHOOKS_MAX_RETRY_AFTER=60):
        assert jobs.retry_after_backoff(1, 2, DeliveryFailed("429", retry_after=3600)) == 60
        assert parse_retry_after("7200") == 60
    assert parse_retry_after("5") == 5
    in_30_s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(in_30_s) <= 30
    assert parse_retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# --- the SSRF guard -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://localhost/", "'localhost' resolves to"),  # a name, looked up like any other
    ("http://localhost:8000/hooks", "loopback address"),
    ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    ("http://[::1]:8080/", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "a link-local address"),  # NAT64 of 169.254.169.254
    ("http://[2002:7f00:1::1]/", "a loopback address"),  # 6to4 of 127.0.0.1
    ("http://0.0.0.0/", "unspecified address"),
    ("https://192.168.1.10/", "private address"),
    ("http://[fd00::1]/", "private address"),
    ("http://[ff02::1]/", "multicast address"),
    ("ftp://example.com/file", "Only http and https URLs"),
    ("https://user:pw@example.com/", "Credentials in the URL are not supported"),
])
def test_endpoint__internal_targets_are_refused_at_validation(url: str, reason: str) -> None:
    """Refuse URLs that reach internal addresses (or are not http/https) in full_clean, naming why."""
    with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False), pytest.raises(ValidationError) as refused:
        Endpoint(url=url, events=["order.paid"]).full_clean()

    assert any(reason in message for message in refused.value.message_dict["url"]), refused.value.message_dict


def test_endpoint__public_and_allowed_private_targets_pass_validation() -> None:
    """Accept a public address, and any address while WEBHOOKS_ALLOW_PRIVATE_TARGETS is True."""
    with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False):
        for url in ("https://93.184.216.34/hooks", "http://[::ffff:93.184.216.34]/", "http://[2606:4700::1111]/"):
            Endpoint(url=url, events=["order.paid"]).full_clean()
    with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True):
        Endpoint(url="http://127.0.0.1:9/hooks", events=["order.paid"]).full_clean()


def test_endpoint__a_host_name_resolving_to_loopback_is_refused() -> None:
    """Resolve names, never match them: the name's address decides (here from /etc/hosts)."""
    with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False), pytest.raises(targets.TargetRefused) as refused:
        targets.validate_url("http://localhost:8000/")
    assert "'localhost' resolves to" in str(refused.value) and "loopback" in str(refused.value)


def test_deliver__send_time_check_refuses_an_endpoint_saved_while_allowed() -> None:
    """Refuse at send time a URL saved while private targets were allowed: a Delivery row, no retry, no request."""
    with Receiver() as receiver:
        target = endpoint(receiver.url)  # saved while allowed (tests/settings.py)
        event = stored_event()
        with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False), \
                pytest.raises(UnrecoverableError, match="loopback address"):
            jobs.deliver(str(event.pk), target.pk)

    assert receiver.requests == []
    row = Delivery.objects.get()
    assert row.status_code is None
    assert row.error.startswith("Refused, nothing was sent: 127.0.0.1 is a loopback address")


def test_transport__connects_to_the_checked_address_with_the_urls_host() -> None:
    """Connect to the address that was checked, never resolving the name again, and send the name as Host."""
    with Receiver() as receiver:
        checked = targets.Target(scheme="http", host="hooks.example.com", port=receiver.port, request_uri="/in?x=1",
                                 host_header=f"hooks.example.com:{receiver.port}", addresses=("127.0.0.1",))
        response = transport.post(checked, b"{}", {"Content-Type": "application/json"}, Timeout(2, 2))

    assert response.status == 200
    [request] = receiver.requests
    assert request.path == "/in?x=1"
    assert request.headers["Host"] == f"hooks.example.com:{receiver.port}"


def test_transport__https_checks_the_certificate_against_the_urls_host(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path) -> None:
    """Over https to the checked address, send the URL's name in SNI and check the certificate against it."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.example.com").configure_cert(server_tls)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # OpenSSL's trust store: the test CA

    def target(host: str, port: int) -> targets.Target:
        return targets.Target(scheme="https", host=host, port=port, request_uri="/in",
                              host_header=f"{host}:{port}", addresses=("127.0.0.1",))

    with Receiver(tls=server_tls) as receiver:
        response = transport.post(target("hooks.example.com", receiver.port), b"{}", {}, Timeout(2, 2))
        with pytest.raises(urllib3.exceptions.SSLError, match="hostname|match"):
            transport.post(target("other.example.com", receiver.port), b"{}", {}, Timeout(2, 2))

    assert response.status == 200
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.example.com:{receiver.port}"


# --- send_event ---------------------------------------------------------------------------------------------------


def test_send_event__enqueues_one_job_per_active_subscribed_endpoint() -> None:
    """Enqueue ids only, for active endpoints subscribed to the event; a second add of a job id adds nothing."""
    a = endpoint("http://127.0.0.1:9/a", ("order.paid", "order.refunded"))
    endpoint("http://127.0.0.1:9/inactive", active=False)
    endpoint("http://127.0.0.1:9/other", ("order.refunded",))
    d = endpoint("http://127.0.0.1:9/d")

    assert webhooks.send_event("order.paid", {"order": 1}) == 2  # the package's name for services.send_event

    event = Event.objects.get()
    queue = get_queue("webhooks")
    waiting = queue.get_jobs("waiting", 0, -1)
    assert sorted((job.id, job.data["endpoint_id"]) for job in waiting) == sorted(
        (services.job_id(event.pk, target.pk), target.pk) for target in (a, d))
    assert all(job.data == {"event_id": str(event.pk), "endpoint_id": job.data["endpoint_id"]} for job in waiting)
    queue.add(jobs.deliver, {"event_id": str(event.pk), "endpoint_id": a.pk}, job_id=services.job_id(event.pk, a.pk))
    assert queue.get_job_counts()["waiting"] == 2


def test_send_event__nobody_subscribed_costs_one_query_and_no_redis_call(
        django_assert_num_queries, redis_client: redis.Redis) -> None:
    """Return 0 after one query, with no Event row and no Redis command, when no active endpoint subscribes."""
    endpoint("http://127.0.0.1:9/a", ("order.refunded",))
    endpoint("http://127.0.0.1:9/b", active=False)

    def commands() -> int:
        return redis_client.info("stats")["total_commands_processed"]

    first = commands()
    baseline = commands() - first  # what reading the counter itself costs
    before = commands()
    with django_assert_num_queries(1):
        assert services.send_event("order.paid", {"order": 1}) == 0
    assert commands() - before == baseline
    assert not Event.objects.exists()


def test_send_event__refuses_bad_names_and_data() -> None:
    """Refuse a malformed event name, non-dict data and data JSON cannot store, naming the fix."""
    endpoint("http://127.0.0.1:9/a", ("order.paid",))
    with pytest.raises(InvalidEvent, match="not an event name"):
        services.send_event("Order Paid", {})
    with pytest.raises(InvalidEvent, match="is a dict"):
        services.send_event("order.paid", ["x"])  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent, match="cannot be stored as JSON"):
        services.send_event("order.paid", {"x": object()})
    assert not Event.objects.exists() and get_queue("webhooks").get_job_counts()["waiting"] == 0


def test_endpoint__events_are_validated() -> None:
    """Refuse an events value that is not a non-empty list of distinct dotted names."""
    for events in ([], "order.paid", ["Order Paid"], ["order.paid", "order.paid"], [1]):
        with pytest.raises(ValidationError) as refused:
            Endpoint(url="http://127.0.0.1:9/", events=events).full_clean()
        assert "events" in refused.value.message_dict, events


# --- signing ------------------------------------------------------------------------------------------------------


def test_verify_signature__refuses_tampering_old_timestamps_and_garbage() -> None:
    """Accept the signature of the exact body within the tolerance; refuse anything else."""
    body = b'{"id":"1"}'
    header = sign("whsec_s", body)
    assert verify_signature("whsec_s", header, body)
    assert verify_signature("whsec_s", header, body.decode())
    assert not verify_signature("whsec_s", header, b'{"id":"2"}')
    assert not verify_signature("whsec_other", header, body)
    old = sign("whsec_s", body, int(time.time()) - 301)
    assert not verify_signature("whsec_s", old, body)
    assert verify_signature("whsec_s", old, body, tolerance=600)
    for garbage in ("", "t=abc,v1=00", "v1=00", header.split(",")[0]):
        assert not verify_signature("whsec_s", garbage, body)
    assert verify_signature("whsec_s", f"{header},v1=deadbeef", body)  # any one v1 may match


# --- the admin ----------------------------------------------------------------------------------------------------


def test_admin__secret_is_generated_and_shown_only_on_the_add_response(admin_client: Client) -> None:
    """Generate the secret on save; show it in the answer to the add form only, masked everywhere after."""
    response = admin_client.post(f"{ENDPOINTS}add/", {"url": "http://127.0.0.1:9/hooks",
                                                      "events": '["order.paid"]', "is_active": "on"})
    assert response.status_code == 200, response.content.decode()[:2000]
    created = Endpoint.objects.get()
    assert created.secret.startswith("whsec_") and len(created.secret) > 40
    assert created.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]

    for url in (f"{ENDPOINTS}{created.pk}/change/", ENDPOINTS):
        page = admin_client.get(url).content.decode()
        assert created.secret not in page and created.secret[6:-4] not in page
        assert f"whsec_…{created.secret[-4:]}" in page
    assert created.secret not in repr(created) + str(created)


def test_admin__add_form_refuses_an_internal_url(admin_client: Client) -> None:
    """Show the SSRF guard's reason on the add form and create nothing."""
    with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False):
        response = admin_client.post(f"{ENDPOINTS}add/", {"url": "http://169.254.169.254/", "events": '["a.b"]'})

    assert response.status_code == 200
    assert "169.254.169.254 is a link-local address: webhooks go to public addresses only" in \
        response.content.decode()
    assert not Endpoint.objects.exists()


def test_endpoint__secret_is_generated_only_when_empty() -> None:
    """Generate a secret on the first save and keep it on later saves; keep one that was given."""
    created = endpoint("http://127.0.0.1:9/a")
    secret = created.secret
    created.save()
    assert Endpoint.objects.get().secret == secret
    assert Endpoint.objects.create(url="http://127.0.0.1:9/b", events=["x"], secret="whsec_given").secret == \
        "whsec_given"


@pytest.fixture
def failed_delivery() -> Delivery:
    target = endpoint("http://127.0.0.1:9/hooks")
    event = stored_event()
    return Delivery.objects.create(endpoint=target, event=event.name, payload_id=event.pk, attempt=5,
                                   status_code=503, error="The endpoint answered 503")


def test_admin__redeliver_action_enqueues_a_new_delivery(admin_client: Client, failed_delivery: Delivery) -> None:
    """Enqueue the selected delivery's event again under a new job id, as the same event."""
    response = admin_client.post(DELIVERIES, {"action": "redeliver", "_selected_action": [failed_delivery.pk]})
    assert response.status_code == 302

    [handle] = get_queue("webhooks").get_jobs("waiting", 0, -1)
    assert handle.data == {"event_id": str(failed_delivery.payload_id), "endpoint_id": failed_delivery.endpoint_id}
    assert handle.id.startswith(services.job_id(failed_delivery.payload_id, failed_delivery.endpoint_id) + "-")
    assert "1 event(s) enqueued for delivery again." in admin_client.get(DELIVERIES).content.decode()


def test_admin__redeliver_needs_its_permission(failed_delivery: Delivery) -> None:
    """Refuse the action to staff who may only view deliveries."""
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client = Client()
    client.force_login(viewer)
    page = client.get(DELIVERIES)
    assert page.status_code == 200 and "redeliver" not in page.content.decode()

    client.post(DELIVERIES, {"action": "redeliver", "_selected_action": [failed_delivery.pk]})
    assert get_queue("webhooks").get_job_counts()["waiting"] == 0


def test_admin__deliveries_filter_by_outcome_and_are_read_only(admin_client: Client,
                                                              failed_delivery: Delivery) -> None:
    """Filter deliveries by success and failure; offer no add or change form."""
    ok = Delivery.objects.create(endpoint=failed_delivery.endpoint, event="order.paid",
                                 payload_id=failed_delivery.payload_id, attempt=6, status_code=200)
    timed_out = Delivery.objects.create(endpoint=failed_delivery.endpoint, event="order.paid",
                                        payload_id=failed_delivery.payload_id, attempt=7, error="ReadTimeoutError")

    def listed(query: dict) -> set[int]:
        return {row.pk for row in admin_client.get(DELIVERIES, query).context["cl"].result_list}

    assert listed({"status": "success"}) == {ok.pk}
    assert listed({"status": "failed"}) == {failed_delivery.pk, timed_out.pk}
    assert listed({"endpoint__id__exact": failed_delivery.endpoint_id}) == {ok.pk, failed_delivery.pk, timed_out.pk}
    assert admin_client.get(f"{DELIVERIES}add/").status_code == 403
    change = admin_client.get(f"{DELIVERIES}{ok.pk}/change/").content.decode()
    assert 'name="_save"' not in change


def test_checks__bad_settings_are_reported() -> None:
    """Report a malformed timeout, retry-after cap or private-targets flag, and a timeout past the job's."""
    with override_settings(WEBHOOKS_TIMEOUT="soon", WEBHOOKS_MAX_RETRY_AFTER=-1, WEBHOOKS_ALLOW_PRIVATE_TARGETS="yes"):
        assert [e.id for e in check_settings()] == ["webhooks.E001", "webhooks.E002", "webhooks.E003"]
    with override_settings(WEBHOOKS_TIMEOUT=(10, 30)):
        assert [e.id for e in check_settings()] == ["webhooks.W001"]
    with override_settings(WEBHOOKS_TIMEOUT=(3, 10)):
        assert check_settings() == []


# --- the notifications app's events ------------------------------------------------------------------------------


def test_notifications__a_sent_and_a_failed_notification_are_posted_once_each(workers: Workers) -> None:
    """Deliver two in-app notifications through a real worker, one that renders and one whose kind has no
    templates: the endpoint subscribed to notification.sent and notification.failed gets one POST for each, with
    the row's ids and status (and the error of the failed one); an endpoint subscribed to neither gets nothing."""
    from notifications import outbox
    from notifications import services as notifications
    from notifications.models import Notification, Status

    user = User.objects.create_user("grace", email="grace@example.com")
    with Receiver() as receiver, Receiver() as bystander:
        target = endpoint(receiver.url, ("notification.sent", "notification.failed"))
        endpoint(bystander.url, ("order.paid",))
        proc = workers.start("rqworker", "notifications", "webhooks")
        [sent] = notifications.notify_many([user.pk], "message", channel="in_app",
                                           context={"title": "Hi", "body": "Hello"})
        failing = Notification.objects.create(recipient=user, kind="no-such-kind", channel="in_app")
        failing.job_id = f"notification-{failing.pk}"
        failing.save(update_fields=["job_id"])
        outbox.enqueue([failing])  # a kind whose templates were removed after the row was made
        wait_for(lambda: len(receiver.requests) == 2, 30, "two webhook POSTs", proc)
        time.sleep(0.5)  # time for a (wrong) third one

    assert len(receiver.requests) == 2 and bystander.requests == []
    bodies = {body["event"]: body for body in (json.loads(request.body) for request in receiver.requests)}
    assert bodies["notification.sent"]["data"] == {"notification_id": sent.pk, "kind": "message",
                                                   "channel": "in_app", "recipient_id": user.pk, "status": "sent"}
    failed = bodies["notification.failed"]["data"]
    assert (failed["notification_id"], failed["status"]) == (failing.pk, "failed")
    assert failed["error"] == Notification.objects.get(pk=failing.pk).last_error != ""
    assert Notification.objects.get(pk=failing.pk).status == Status.FAILED
    for request in receiver.requests:
        assert verify_signature(target.secret, request.headers["X-Webhook-Signature"], request.body)


def test_cleanup__deletes_events_and_deliveries_older_than_keep_days() -> None:
    """Run webhooks.cleanup in a burst worker: events and deliveries older than WEBHOOKS_KEEP_DAYS (30) go,
    newer ones stay."""
    from tests.test_schedulers import run_burst

    target = endpoint("http://127.0.0.1:9/hooks")
    old, new = stored_event(), stored_event()
    for event in (old, new):
        Delivery.objects.create(endpoint=target, event=event.name, payload_id=event.pk, attempt=1, status_code=200,
                                duration_ms=1)
    long_ago = datetime.now(UTC) - timedelta(days=31)
    Event.objects.filter(pk=old.pk).update(created_at=long_ago)
    Delivery.objects.filter(payload_id=old.pk).update(created_at=long_ago)

    handle = get_queue("cleanup").add("webhooks.cleanup")
    run_burst("cleanup")
    assert handle.get_state() == "completed"
    assert list(Event.objects.values_list("pk", flat=True)) == [new.pk]
    assert list(Delivery.objects.values_list("payload_id", flat=True)) == [new.pk]
