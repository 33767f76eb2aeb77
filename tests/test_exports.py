"""CSV exports: the admin action, the job on a real worker process, the download, the cleanup of old files."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.core.checks import Error
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst

from exports import jobs
from exports.actions import start_export
from exports.checks import check_keep_days
from exports.csvfile import ExportDefinitionError
from exports.models import Export, Status
from notifications.models import Channel, Notification
from queues import UnrecoverableError, get_queue
from queues.events import read
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/notifications/notification/"
ROWS = 10_000


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff(username: str, *codenames: str) -> User:
    """A staff user holding the notifications permissions ``codenames``."""
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="notifications",
                                                         codename__in=codenames))
    return user


def download(client: Client, export: Export) -> tuple[int, bytes]:
    response = client.get(reverse("exports:download", args=[export.pk]))
    body = b"".join(response.streaming_content) if response.status_code == 200 else b""
    return response.status_code, body


def make_notifications(recipient: User) -> None:
    statuses = ["sent", "failed", "canceled", "queued"]
    Notification.objects.bulk_create(
        [Notification(recipient=recipient, kind="reminder", channel=Channel.EMAIL, status=statuses[n % 4],
                      attempts=n % 3, context={"n": n}) for n in range(ROWS - 1)]
        # A row a spreadsheet would run as formulas if the export did not neutralize them (bulk_create skips the
        # kind's validator, as a careless import might).
        + [Notification(recipient=recipient, kind="=HYPERLINK(\"http://x.test\")", channel=Channel.EMAIL,
                        status="failed", title="@SUM(A1:A2)", last_error="+1+1", body="-2-3")],
        batch_size=2000)


def test_export__10000_rows_made_by_a_worker_with_progress_and_safe_cells(workers, redis_client: redis.Redis
                                                                          ) -> None:
    """Export 10,000 notifications on a worker: progress reaches 100 in steps, the file has a header and every row
    with its values, formula cells are neutralized, and only the owner and superusers may download it."""
    owner = staff("owner", "view_notification")
    make_notifications(owner)
    export = start_export(owner, Notification.objects.all())  # the admin list's order: newest first
    proc = workers.start("rqworker", "exports")

    wait_for(lambda: Export.objects.get(pk=export.pk).status == Status.DONE, 120, "the export to be done", proc)

    export.refresh_from_db()
    assert (export.progress, export.row_count, export.error) == (100, ROWS, "")
    assert export.finished_at is not None and export.file.name.startswith(timezone.now().strftime("exports/%Y/%m/"))
    handle = get_queue("exports").get_job(export.job_id)
    assert handle.progress == 100
    # Reported once per 2,000 rows (and 100 once the file is saved), not once per row.
    progress = [e["data"] for e in read(redis_client, "exports", count=1000) if e["event"] == "progress"]
    assert progress == [20, 40, 60, 80, 99, 100]

    with default_storage.open(export.file.name, "rb") as f:
        content = f.read()
    text = content.decode("utf-8")
    assert text.count("\r\n") == ROWS + 1  # no cell of these rows holds a line break: one line per row
    rows = list(csv.reader(io.StringIO(text, newline="")))
    fields = [f for f in Notification._meta.concrete_fields]
    assert rows[0] == [capfirst(str(f.verbose_name)) for f in fields]
    assert rows[0][:5] == ["ID", "Recipient", "Kind", "Channel", "Status"]
    assert len(rows) == ROWS + 1
    column = {f.name: i for i, f in enumerate(fields)}
    by_id = {int(row[column["id"]]): row for row in rows[1:]}
    assert list(by_id) == list(Notification.objects.values_list("pk", flat=True))  # every row, in the list's order
    some = Notification.objects.filter(kind="reminder").order_by("pk")[7]
    row = by_id[some.pk]
    assert [row[column[name]] for name in ("recipient", "kind", "channel", "status", "attempts", "context")] == [
        str(owner.pk), "reminder", "email", some.status, str(some.attempts), f'{{"n":{some.context["n"]}}}']
    assert row[column["created_at"]] == some.created_at.isoformat()
    evil = by_id[Notification.objects.get(title="@SUM(A1:A2)").pk]
    assert [evil[column[name]] for name in ("kind", "title", "last_error", "body")] == [
        "'=HYPERLINK(\"http://x.test\")", "'@SUM(A1:A2)", "'+1+1", "'-2-3"]

    assert download(client_of(owner), export) == (200, content)
    assert download(client_of(staff("other", "view_notification")), export)[0] == 404
    assert download(client_of(User.objects.create_superuser("root", password="pw")), export) == (200, content)
    anonymous = Client().get(reverse("exports:download", args=[export.pk]))
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_export__admin_action_stores_the_selection_and_enqueues_the_id() -> None:
    """POST the "Export to CSV" action: one Export holds the selected ids in list order, its job (data: the
    export's id) waits on the exports queue, and the message links to the export."""
    user = staff("ada", "view_notification")
    Notification.objects.bulk_create([Notification(recipient=user, kind="reminder") for _ in range(5)])
    listed = list(Notification.objects.values_list("pk", flat=True))
    selected = listed[1:4]
    client = client_of(user)

    response = client.post(CHANGELIST, {"action": "export_to_csv", "_selected_action": selected}, follow=True)

    export = Export.objects.get()
    assert (export.created_by, export.model_label, export.pks, export.status) == (
        user, "notifications.notification", selected, Status.PENDING)
    assert export.fields == [f.name for f in Notification._meta.concrete_fields]
    handle = get_queue("exports").get_job(export.job_id)
    assert (handle.get_state(), handle.name, handle.data) == ("waiting", "exports.run", {"export_id": export.pk})
    page = response.content.decode()
    assert f'href="{reverse("admin:exports_export_change", args=[export.pk])}"' in page
    assert "Exporting 3 notifications to CSV" in page
    # The export's admin page shows it to its owner.
    assert client.get(reverse("admin:exports_export_change", args=[export.pk])).status_code == 200


def test_export__admin_lists_own_exports_only_and_cannot_add(admin_client: Client) -> None:
    """List a staff user's own exports (a superuser sees all) with a download link once done; offer no add."""
    ada, bob = staff("ada"), staff("bob")
    mine = Export.objects.create(created_by=ada, model_label="notifications.notification", status=Status.DONE,
                                 file="exports/2020/01/mine.csv", progress=100, row_count=3)
    theirs = Export.objects.create(created_by=bob, model_label="notifications.notification")
    url = reverse("admin:exports_export_changelist")

    response = client_of(ada).get(url)

    assert [e.pk for e in response.context["cl"].result_list] == [mine.pk]
    assert reverse("exports:download", args=[mine.pk]) in response.content.decode()
    assert client_of(ada).get(reverse("admin:exports_export_change", args=[theirs.pk])).status_code == 302  # gone
    assert {e.pk for e in admin_client.get(url).context["cl"].result_list} == {mine.pk, theirs.pk}
    assert admin_client.get(reverse("admin:exports_export_add")).status_code == 403


def test_export__unknown_field_is_refused_before_anything_is_stored() -> None:
    """Refuse an export naming a field the model lacks, saying which, and store and enqueue nothing."""
    user = staff("ada")
    with pytest.raises(ExportDefinitionError, match="notifications.Notification has no field 'colour'"):
        start_export(user, Notification.objects.all(), ["id", "colour"])
    assert not Export.objects.exists()
    assert get_queue("exports").get_job_counts()["waiting"] == 0


def test_export__a_rerun_starts_over_and_a_missing_model_fails_at_once() -> None:
    """Run the job again on a failed export: it starts over and completes; an unknown model fails the row for good."""
    user = staff("ada")
    rows = Notification.objects.bulk_create([Notification(recipient=user, kind="reminder") for _ in range(3)])
    export = Export.objects.create(created_by=user, model_label="notifications.notification",
                                   pks=[rows[2].pk, 999_999, rows[0].pk], fields=["id", "kind"],
                                   status=Status.FAILED, error="OperationalError: database is locked", progress=40)

    assert jobs.run_export(export.pk) == {"export_id": export.pk, "rows": 2}  # the deleted row 999999 is left out

    export.refresh_from_db()
    assert (export.status, export.error, export.progress, export.row_count) == (Status.DONE, "", 100, 2)
    with default_storage.open(export.file.name) as f:
        assert f.read().decode() == f"ID,Kind\r\n{rows[2].pk},reminder\r\n{rows[0].pk},reminder\r\n"
    assert jobs.run_export(export.pk)["skipped"] == "it is done"  # a duplicate job does not make it again

    gone = Export.objects.create(created_by=user, model_label="shop.order", pks=[1], fields=["id"])
    with pytest.raises(UnrecoverableError, match="shop.order"):
        jobs.run_export(gone.pk)
    gone.refresh_from_db()
    assert gone.status == Status.FAILED and "shop.order" in gone.error and gone.finished_at is not None


def test_export__cleanup_deletes_files_older_than_keep_days() -> None:
    """Delete the files of exports finished more than EXPORTS_KEEP_DAYS ago and mark them expired; keep newer ones."""
    user = staff("ada")
    now = timezone.now()

    def finished(days_ago: float) -> Export:
        export = Export.objects.create(created_by=user, model_label="notifications.notification", pks=[1, 2],
                                       fields=["id"], status=Status.DONE, finished_at=now - timedelta(days=days_ago))
        export.file.save(f"cleanup-{export.pk}.csv", ContentFile(b"ID\r\n1\r\n"))
        return export

    old, recent = finished(3.5), finished(2.5)

    with override_settings(EXPORTS_KEEP_DAYS=3):
        assert jobs.cleanup() == {"expired": 1}

    old_name = old.file.name
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, old.file.name, old.pks) == (Status.EXPIRED, "", [])
    assert not default_storage.exists(old_name)
    assert recent.status == Status.DONE and default_storage.exists(recent.file.name)
    assert download(client_of(user), old)[0] == 404
    assert download(client_of(user), recent)[0] == 200
    with override_settings(EXPORTS_KEEP_DAYS=None):
        assert jobs.cleanup() == {"expired": 0}
    assert jobs.cleanup() == {"expired": 0}  # the default, 7 days

    recent.delete()  # deleting an export deletes its file
    assert not default_storage.exists(recent.file.name)


@pytest.mark.parametrize("value", [0, -1, "7", 2.5, True])
def test_export__check_refuses_bad_keep_days(value: object) -> None:
    """Report an EXPORTS_KEEP_DAYS that is not a whole number of days ≥ 1 nor None."""
    with override_settings(EXPORTS_KEEP_DAYS=value):
        assert check_keep_days() == [Error(
            f"EXPORTS_KEEP_DAYS is {value!r}.",
            hint="Use a whole number of days ≥ 1 (default 7), or None to keep export files until deleted by hand.",
            id="exports.E001")]
    with override_settings(EXPORTS_KEEP_DAYS=None):
        assert check_keep_days() == []
