"""In-app notifications: delivery into the user's inbox, the inbox API, and the session login non-staff users need.

Delivery runs in an in-process ``SimpleWorker`` (burst), except in the end-to-end test, which starts a real
``manage.py rqworker notifications`` process sharing the test database.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from notifications import inbox, outbox, services
from notifications.exceptions import InvalidNotification
from notifications.models import Channel, Notification, Status
from queues.worker import SimpleWorker
from tests.helpers import signals_restored, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

INBOX = "/api/notifications/"


@pytest.fixture
def ada() -> User:
    return User.objects.create_user("ada", email="ada@example.com", password="ada-secret-pw")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", email="", password="bob-secret-pw")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def deliver() -> None:
    """Run every job waiting on the notifications queue, in this process."""
    with signals_restored():
        SimpleWorker(["notifications"]).work(burst=True)


def send(users: list[User], count: int, **context: Any) -> list[int]:
    """``count`` in-app messages to each of ``users`` through the service, delivered; their ids, oldest first."""
    ids = []
    for n in range(count):
        rows = services.notify_many([u.pk for u in users], "message", channel=Channel.IN_APP,
                                    context={"title": f"Message {n}", "body": f"Body {n}", **context})
        ids += [row.pk for row in rows]
    deliver()
    return ids


def get(client: Client, url: str, **params: Any) -> tuple[int, dict]:
    response = client.get(url, params)
    return response.status_code, response.json()


def post(client: Client, url: str, **extra: Any) -> tuple[int, dict]:
    response = client.post(url, **extra)
    return response.status_code, response.json()


def test_in_app__worker_process_delivers_into_the_inbox_of_a_user_who_logs_in(workers: Any, ada: User,
                                                                              bob: User) -> None:
    """Deliver notify_many's in-app rows with a worker process; the user logs in (real CSRF) and reads their own."""
    proc = workers.start("rqworker", "notifications")
    for_ada = services.notify_many([ada.pk], "reminder", channel=Channel.IN_APP, context={"message": "Stand-up"})
    for_both = services.notify_many([ada.pk, bob.pk], "message", channel=Channel.IN_APP,
                                    context={"title": "Deploy <tonight>", "body": "From 22:00 & for an hour."})
    ids = [row.pk for row in for_ada + for_both]
    wait_for(lambda: Notification.objects.filter(pk__in=ids, status=Status.SENT).count() == 3, 30,
             "the worker to deliver the in-app notifications", proc)

    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/accounts/login/")
    assert login_page.status_code == 200 and 'name="csrfmiddlewaretoken"' in login_page.content.decode()
    response = client.post("/accounts/login/", {"username": "ada", "password": "ada-secret-pw", "next": INBOX,
                                                 "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert (response.status_code, response["Location"]) == (302, INBOX)

    code, body = get(client, INBOX)
    assert code == 200, body
    [deploy, reminder] = body["results"]  # newest delivery first; bob's copy is not there
    assert (body["count"], body["unread"]) == (2, 2)
    assert deploy["id"] == next(r.pk for r in for_both if r.recipient_id == ada.pk)
    assert (deploy["kind"], deploy["title"], deploy["body"]) == ("message", "Deploy <tonight>",
                                                                "From 22:00 & for an hour.")  # plain text
    assert (reminder["kind"], reminder["title"]) == ("reminder", "Reminder: Stand-up")
    assert reminder["body"].startswith("This is the reminder you asked for") and "Stand-up" in reminder["body"]
    assert (reminder["unread"], reminder["read_at"]) == (True, None)

    csrf = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}  # rotated by the login
    assert post(client, f"{INBOX}{reminder['id']}/read/")[0] == 403  # no token: refused
    code, marked = post(client, f"{INBOX}{reminder['id']}/read/", **csrf)
    assert (code, marked["unread"]) == (200, False)
    assert [n["id"] for n in get(client, INBOX, unread=1)[1]["results"]] == [deploy["id"]]


def test_inbox__lists_only_the_users_own_delivered_notifications(ada: User, bob: User) -> None:
    """List a user's own delivered in-app rows, newest first; ?unread=1 leaves out the ones they read."""
    ids = send([ada, bob], 3)
    ada_ids = [pk for pk in ids if Notification.objects.get(pk=pk).recipient_id == ada.pk]
    bob_ids = [pk for pk in ids if pk not in ada_ids]
    inbox.mark_read(ada, ada_ids[0])
    inbox.mark_read(bob, bob_ids[1])
    services.notify_many([ada.pk], "reminder")  # email: not in the inbox
    services.notify_many([ada.pk], "message", channel=Channel.IN_APP, context={"title": "later"})  # not delivered
    client = logged_in(ada)

    code, everything = get(client, INBOX)
    code_unread, unread = get(client, INBOX, unread=1)

    assert (code, code_unread) == (200, 200)
    assert [n["id"] for n in everything["results"]] == ada_ids[::-1]
    assert [n["title"] for n in everything["results"]] == ["Message 2", "Message 1", "Message 0"]
    assert [n["unread"] for n in everything["results"]] == [True, True, False]
    assert (everything["count"], everything["unread"]) == (3, 2)
    assert [n["id"] for n in unread["results"]] == ada_ids[:0:-1]
    assert (unread["count"], unread["unread"]) == (2, 2)
    assert set(unread["results"][0]) == {"id", "kind", "title", "body", "created_at", "sent_at", "read_at", "unread"}
    assert get(client, INBOX, unread="maybe") == (400, {"error": "Invalid query parameter: unread.",
                                                        "errors": {"unread": ["Use unread=1 or unread=0."]}})


def test_mark_read__keeps_the_first_time_and_read_all_marks_only_the_callers(ada: User, bob: User) -> None:
    """Answer a second read 200 with the first read_at; read-all marks the caller's unread ones and no one else's."""
    ids = send([ada, bob], 3)
    first = Notification.objects.filter(pk__in=ids, recipient=ada).order_by("pk").first()
    client = logged_in(ada)

    code, once = post(client, f"{INBOX}{first.pk}/read/")
    code_again, again = post(client, f"{INBOX}{first.pk}/read/")

    assert (code, code_again) == (200, 200)
    assert once["read_at"] is not None and again["read_at"] == once["read_at"]
    assert Notification.objects.get(pk=first.pk).read_at.isoformat() == once["read_at"]
    assert post(client, f"{INBOX}read-all/") == (200, {"marked_read": 2})
    assert post(client, f"{INBOX}read-all/") == (200, {"marked_read": 0})
    assert Notification.objects.get(pk=first.pk).read_at.isoformat() == once["read_at"]
    assert not Notification.objects.filter(recipient=ada, read_at__isnull=True).exists()
    assert Notification.objects.filter(recipient=bob, read_at__isnull=True).count() == 3


def test_mark_read__an_id_outside_the_callers_inbox_answers_404(ada: User, bob: User) -> None:
    """Answer 404 for another user's id (staff too), an email's, an undelivered one's and an unknown one; mark none."""
    [ada_id, bob_id] = send([ada, bob], 1)
    [email] = services.notify_many([ada.pk], "reminder")
    [queued] = services.notify_many([ada.pk], "message", channel=Channel.IN_APP, context={"title": "x"})
    staff = User.objects.create_user("root", password="x", is_staff=True, is_superuser=True)

    for client, pk in ((logged_in(ada), bob_id), (logged_in(bob), ada_id), (logged_in(staff), ada_id),
                       (logged_in(ada), email.pk), (logged_in(ada), queued.pk), (logged_in(ada), 999_999)):
        assert post(client, f"{INBOX}{pk}/read/") == (404, {"error": f"Notification {pk} does not exist."})
    assert get(logged_in(staff), INBOX)[1]["results"] == []  # staff have an inbox of their own, like anyone
    assert not Notification.objects.filter(read_at__isnull=False).exists()


def test_inbox__pages_of_20_by_default_and_up_to_100(ada: User) -> None:
    """Split 25 rows into pages of 20 and 5 with next/previous numbers; clamp page_size to 100; 404 past the end."""
    ids = send([ada], 25)
    client = logged_in(ada)

    first, second = get(client, INBOX)[1], get(client, INBOX, page=2)[1]

    assert (first["count"], first["page"], first["pages"], first["page_size"]) == (25, 1, 2, 20)
    assert (len(first["results"]), first["next"], first["previous"]) == (20, 2, None)
    assert (len(second["results"]), second["next"], second["previous"]) == (5, None, 1)
    assert [n["id"] for n in first["results"] + second["results"]] == ids[::-1]
    assert len(get(client, INBOX, page_size=100)[1]["results"]) == 25
    assert get(client, INBOX, page_size=500)[1]["page_size"] == 100
    assert [n["id"] for n in get(client, INBOX, page_size=10, page=3)[1]["results"]] == ids[4::-1]
    assert get(client, INBOX, page=3) == (404, {"error": "Page 3 does not exist: there are 2."})
    for bad in ("0", "two", "²", "-1"):
        code, body = get(client, INBOX, page=bad)
        assert (code, body["errors"]) == (400, {"page": ["Enter a whole number of 1 or more."]})
    assert get(client, INBOX, page_size="0")[0] == 400
    assert get(logged_in(User.objects.create_user("new")), INBOX)[1] == {
        "count": 0, "page": 1, "pages": 1, "page_size": 20, "next": None, "previous": None, "unread": 0,
        "results": []}


def test_inbox__anonymous_answers_401_and_a_post_without_csrf_403(ada: User) -> None:
    """Refuse anonymous callers (401, as the rest of the API) and a session POST without its CSRF token (403)."""
    [pk] = send([ada], 1)
    anonymous = Client(enforce_csrf_checks=True)
    for method, url in (("get", INBOX), ("post", f"{INBOX}{pk}/read/"), ("post", f"{INBOX}read-all/")):
        response = getattr(anonymous, method)(url)
        assert (response.status_code, response.json()) == (401, {"error": "Authentication required: log in first."})

    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    for url in (f"{INBOX}{pk}/read/", f"{INBOX}read-all/"):
        code, body = post(client, url)
        assert code == 403 and body["error"].startswith("CSRF check failed"), body
    assert get(client, INBOX)[1]["unread"] == 1
    assert client.put(f"{INBOX}read-all/").status_code == 405


def test_login__a_non_staff_user_logs_in_and_out_through_the_accounts_pages(ada: User) -> None:
    """Log in with the login page's CSRF token, use the API, log out by POST: the API then answers 401."""
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/", {"next": INBOX}).content.decode()
    assert f'name="next" value="{INBOX}"' in page and 'name="password"' in page

    wrong = client.post("/accounts/login/", {"username": "ada", "password": "nope",
                                             "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert wrong.status_code == 200 and "Please enter a correct username and password" in wrong.content.decode()
    assert client.post("/accounts/login/", {"username": "ada", "password": "ada-secret-pw"}).status_code == 403
    response = client.post("/accounts/login/", {"username": "ada", "password": "ada-secret-pw", "next": INBOX,
                                                "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert (response.status_code, response["Location"]) == (302, INBOX)
    assert get(client, INBOX)[0] == 200
    assert "You are logged in as ada." in client.get("/accounts/login/").content.decode()

    assert client.get("/accounts/logout/").status_code == 405  # Django 5: logging out is a POST
    logged_out = client.post("/accounts/logout/", {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert logged_out.status_code == 200 and "You have been logged out." in logged_out.content.decode()
    assert 'href="/accounts/login/"' in logged_out.content.decode()
    assert get(client, INBOX)[0] == 401


def test_accounts_pages__answer_without_a_server_error_logged_in_or_not(ada: User) -> None:
    """Render every page of django.contrib.auth.urls for an anonymous and a logged-in non-staff user."""
    pages = ["/accounts/login/", "/accounts/password_change/", "/accounts/password_change/done/",
             "/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/MQ/set-password/",
             "/accounts/reset/done/"]
    for client in (Client(), logged_in(ada)):
        for url in pages:
            response = client.get(url, follow=True)
            assert response.status_code == 200, (url, response.status_code)
        assert client.post("/accounts/password_reset/", {"email": "ada@example.com"}, follow=True).status_code == 200
        assert client.post("/accounts/logout/").status_code == 200
    # A login only the admin offered before: the password change form, for a user who is not staff.
    client = logged_in(ada)
    response = client.post("/accounts/password_change/", {"old_password": "ada-secret-pw",
                                                          "new_password1": "a-new-long-pw-42",
                                                          "new_password2": "a-new-long-pw-42"})
    assert (response.status_code, response["Location"]) == (302, "/accounts/password_change/done/")


def test_deliver_in_app__a_kind_without_in_app_templates_fails_the_row(ada: User) -> None:
    """Refuse such a kind in notify_many; a row made some other way fails at delivery with the template named."""
    with pytest.raises(InvalidNotification, match=r"in_app/<kind>\.txt and <kind>_title\.txt"):
        services.notify_many([ada.pk], "welcome-back", channel=Channel.IN_APP)
    with pytest.raises(InvalidNotification, match="Unknown channel 'sms'"):
        services.notify_many([ada.pk], "reminder", channel="sms")
    row = Notification.objects.create(recipient=ada, kind="welcome", channel=Channel.IN_APP)
    row.job_id = row.first_job_id()
    row.save()
    outbox.enqueue([row])

    deliver()

    row.refresh_from_db()
    assert (row.status, row.title, row.sent_at) == (Status.FAILED, "", None)
    assert "notifications/in_app/welcome_title.txt" in row.last_error
    assert get(logged_in(ada), INBOX)[1]["count"] == 0


@pytest.fixture
def admin_user_client() -> Client:
    return logged_in(User.objects.create_user("root", password="x", is_staff=True, is_superuser=True))


def test_admin__in_app_change_page_shows_the_message_and_when_it_was_read(admin_user_client: Client,
                                                                          ada: User) -> None:
    """Show title, body and read_at on an in-app row's change page, not on an email row's."""
    [pk] = send([ada], 1)
    inbox.mark_read(ada, pk)
    [email] = services.notify_many([ada.pk], "reminder")

    in_app_page = admin_user_client.get(f"/admin/notifications/notification/{pk}/change/").content.decode()
    email_page = admin_user_client.get(f"/admin/notifications/notification/{email.pk}/change/").content.decode()

    for label in ("Title:", "Body:", "Read at:"):
        assert label in in_app_page and label not in email_page
    assert "Message 0" in in_app_page and "Body 0" in in_app_page


def test_inbox_list__answers_in_a_fixed_number_of_queries(ada: User, django_assert_num_queries: Any) -> None:
    """Read a page of the inbox in the same few queries whatever its size (session, user, count, unread, page)."""
    send([ada], 3)
    client = logged_in(ada)
    client.get(INBOX)
    with django_assert_num_queries(5):
        assert json.loads(client.get(INBOX).content)["count"] == 3
