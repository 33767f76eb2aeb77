"""User imports: the admin upload and its checks, the ``imports.users`` job's rules, the report download, a real
worker end to end, and a 100,000-row file imported with bounded memory."""

from __future__ import annotations

import csv
import io
import re
import time
import tracemalloc
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.checks import Error, run_checks
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse

from imports.jobs import import_users
from imports.models import UserImport
from queues import UnrecoverableError, get_queue
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ADD = reverse("admin:imports_userimport_add")
CHANGELIST = reverse("admin:imports_userimport_changelist")
HEADER = "username,email,first_name,last_name\n"


def user_with(username: str, *codenames: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, email=f"{username}@staff.example", password="pw", is_staff=True,
                                    is_superuser=superuser)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="imports", codename__in=codenames))
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def uploader() -> User:
    return user_with("uploader", "add_userimport")


def upload(client: Client, name: str, content: str | bytes) -> object:
    data = content.encode() if isinstance(content, str) else content
    return client.post(ADD, {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def stored(content: str | bytes, creator: User | None = None, name: str = "users.csv") -> UserImport:
    """An import whose file is in storage, as an upload leaves it (the job is not queued)."""
    data = content.encode() if isinstance(content, str) else content
    return UserImport.objects.create(created_by=creator, file=ContentFile(data, name=name))


def run(user_import: UserImport) -> UserImport:
    """Run the job function in this process, as a worker would, and read the import again."""
    import_users(import_id=user_import.pk)
    user_import.refresh_from_db()
    return user_import


def report_of(user_import: UserImport) -> dict[int, dict[str, str]]:
    """The import's report as stored: {line: row}."""
    with user_import.report.open("rb") as f:
        return {int(row["line"]): row for row in csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig"))}


# --- the upload ---------------------------------------------------------------------------------------------


def test_upload__queues_the_import_with_its_id_after_commit(uploader: User) -> None:
    """Store the upload, record who uploaded it, and queue one job whose data is the import's id only."""
    response = upload(logged_in(uploader), "users.csv", HEADER + "ada,ada@example.com,Ada,Lovelace\n")

    user_import = UserImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:imports_userimport_change", args=[user_import.pk])
    assert (user_import.created_by, user_import.status) == (uploader, "pending")
    assert user_import.file.name.startswith("imports/") and user_import.file.name.endswith(".csv")
    handle = get_queue("imports").get_job(user_import.job_id)
    assert handle is not None and handle.name == "imports.users"
    assert (handle.data, handle.get_state()) == ({"import_id": user_import.pk}, "waiting")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("users.txt", HEADER + "ada,ada@example.com,Ada,L\n", "Upload a .csv file: “users.txt” is not one."),
    ("users.csv", "username,email,name\nada,ada@example.com,Ada\n",
     "The header is missing the columns first_name, last_name."),
    ("users.csv", "ada,ada@example.com,Ada,Lovelace\n", "The header is missing the columns username, email, "),
    ("users.csv", "\n", "The file is empty: its first line must be the header"),
    ("users.csv", "username,email,first_name,last_name,\xe9\n".encode("latin-1"), "The file is not UTF-8 text"),
])
def test_upload__refuses_a_file_the_import_cannot_read(uploader: User, name: str, content: str | bytes,
                                                       message: str) -> None:
    """Refuse a non-CSV name, a header lacking columns, an empty or non-UTF-8 file: say why; store and queue nothing."""
    response = upload(logged_in(uploader), name, content)

    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["file"])
    assert not UserImport.objects.exists()
    assert get_queue("imports").get_job_counts()["waiting"] == 0


@override_settings(IMPORTS_MAX_BYTES=100)
def test_upload__refuses_a_file_over_the_size_limit(uploader: User) -> None:
    """Refuse a file over IMPORTS_MAX_BYTES, naming the setting."""
    response = upload(logged_in(uploader), "users.csv", HEADER + "ada,ada@example.com,Ada,Lovelace\n" * 3)

    [error] = response.context["adminform"].form.errors["file"]
    assert "over the 100\xa0bytes limit (IMPORTS_MAX_BYTES)" in error
    assert not UserImport.objects.exists()


def test_upload__accepts_a_bom_and_any_column_order() -> None:
    """Accept UTF-8 with a byte order mark and the columns in any order and case."""
    client = logged_in(user_with("root", superuser=True))
    response = upload(client, "users.CSV", "\ufeffEmail, last_name,USERNAME,first_name,notes\n".encode())
    assert response.status_code == 302
    assert UserImport.objects.count() == 1


def test_upload__needs_the_add_permission() -> None:
    """Refuse the upload page to staff without imports.add_userimport."""
    client = logged_in(user_with("viewer"))
    assert client.get(ADD).status_code == 403
    assert upload(client, "users.csv", HEADER).status_code == 403
    assert not UserImport.objects.exists()


def test_admin__each_uploader_sees_their_own_imports_and_a_superuser_all(uploader: User) -> None:
    """List an uploader's own imports only (another's page is not found); list all to a superuser."""
    other = user_with("other", "add_userimport")
    mine, theirs = stored(HEADER, uploader), stored(HEADER, other)
    client = logged_in(uploader)

    page = client.get(CHANGELIST)
    assert [row.pk for row in page.context["cl"].result_list] == [mine.pk]
    assert client.get(reverse("admin:imports_userimport_change", args=[mine.pk])).status_code == 200
    response = client.get(reverse("admin:imports_userimport_change", args=[theirs.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    root = logged_in(user_with("root", superuser=True))
    assert {row.pk for row in root.get(CHANGELIST).context["cl"].result_list} == {mine.pk, theirs.pk}


def test_admin__import_page_is_read_only_with_counts_and_the_report_link(uploader: User) -> None:
    """Show the counts, progress and a link to the report on a read-only page."""
    user_import = run(stored(HEADER + "ada,ada@example.com,Ada,L\nbad,nope,,\n", uploader))

    page = logged_in(uploader).get(reverse("admin:imports_userimport_change", args=[user_import.pk]))
    html = page.content.decode()
    assert 'name="_save"' not in html and 'type="file"' not in html
    for label, value in (("Status", "Done"), ("Progress", "100 %"), ("Created", "1"), ("Rejected", "1")):
        assert re.search(rf'<label>{label}:</label>\s*<div class="readonly">{re.escape(value)}</div>', html), label
    assert f'href="{reverse("imports:report", args=[user_import.pk])}"' in html
    assert "Download the 1 rejected rows (CSV)" in html


# --- the report download ------------------------------------------------------------------------------------


def test_report__creator_or_superuser_only(uploader: User) -> None:
    """Serve the report as an attachment to its creator and superusers; 404 to others; login to the anonymous."""
    user_import = run(stored(HEADER + "bad,nope,,\n", uploader))
    url = reverse("imports:report", args=[user_import.pk])

    for client in (logged_in(uploader), logged_in(user_with("root", superuser=True))):
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="user-import-{user_import.pk}-rejected.csv"'
        assert b"email 'nope' is not a valid email address" in b"".join(response.streaming_content)
    assert logged_in(user_with("other", "add_userimport", "view_userimport")).get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(settings.LOGIN_URL)
    clean = run(stored(HEADER + "ada,ada@example.com,,\n", uploader))
    assert logged_in(uploader).get(reverse("imports:report", args=[clean.pk])).status_code == 404


# --- the job's rules ----------------------------------------------------------------------------------------


@override_settings(IMPORTS_BATCH_SIZE=2)  # conflicts across batches as well as within one
def test_job__rules_across_batches(uploader: User) -> None:
    """Match emails case-insensitively, reject conflicts with their line, skip blank rows, count real changes."""
    User.objects.create_user("grace-old", email="Grace@Example.COM", first_name="G")
    User.objects.create_user("Taken", email="owner@example.com")
    User.objects.create_user("staffer", email="staff@example.com", is_staff=True)
    User.objects.create_user("twin1", email="twin@example.com")
    User.objects.create_user("twin2", email="TWIN@example.com")
    content = ("\ufeffEmail,username,first_name,last_name,notes\n"   # 1: BOM, other order, extra column
               "ada@example.com,ada,Ada,Lovelace,x\n"                 # 2: created
               "grace@example.com,grace,Grace,Hopper,\n"              # 3: updates grace-old
               "\n"                                                   # 4: blank, skipped
               ",,,,\n"                                               # 5: empty cells, skipped
               'alan@example.com,alan,"Alan\nMathison",Turing,\n'     # 6-7: a quoted line break: starts on 6
               "ADA@example.com,ada2,Ada,Again,\n"                    # 8: duplicate of line 2 (earlier batch)
               "new@example.com,ADA,Ada,Third,\n"                     # 9: username of line 2
               "dan@example.com,taken,Dan,D,\n"                       # 10: Taken's, case-insensitively
               "staff@example.com,staffer,Staff,Er,\n"                # 11: a staff account
               "twin@example.com,twin,T,W,\n"                         # 12: two users have it
               "bob@example.com,bob smith,Bob,S,\n"                   # 13: invalid username
               f"long@example.com,long,{'x' * 151},L,\n"              # 14: name too long
               "=1+2,eve,Eve,E,\n"                                    # 15: bad email, a formula in the report
               'x@example.com,"bad\nname",,,\n')                      # 16-17: invalid username, starts on 16

    user_import = run(stored(content.encode(), uploader))

    assert (user_import.status, user_import.progress, user_import.error) == ("done", 100, "")
    assert (user_import.total, user_import.created, user_import.updated, user_import.rejected) == (12, 2, 1, 9)
    assert user_import.finished_at is not None
    reasons = {line: row["reason"] for line, row in report_of(user_import).items()}
    assert reasons == {
        8: "duplicate email: line 2 of this file has it",
        9: "username 'ADA' is already used on line 2 of this file",
        10: "username 'taken' is taken by another user",
        11: "the email is a staff account's: only a superuser's import may change it",
        12: "2 users have the email 'twin@example.com': which one to update is unknown",
        13: "username 'bob smith' is not valid: Enter a valid username. This value may contain only letters, "
            "numbers, and @/./+/-/_ characters.",
        14: "first_name is longer than 150 characters",
        15: "email '=1+2' is not a valid email address",
        16: "username 'bad\\nname' is not valid: Enter a valid username. This value may contain only letters, "
            "numbers, and @/./+/-/_ characters.",
    }
    row = report_of(user_import)[15]
    assert (row["username"], row["email"], row["first_name"]) == ("eve", "'=1+2", "Eve")
    grace = User.objects.get(email__iexact="grace@example.com")
    assert (grace.username, grace.first_name, grace.last_name, grace.email) == ("grace", "Grace", "Hopper",
                                                                               "Grace@example.com")
    ada = User.objects.get(username="ada")
    assert (ada.email, ada.first_name, ada.has_usable_password()) == ("ada@example.com", "Ada", False)
    assert User.objects.get(username="alan").first_name == "Alan\nMathison"

    again = run(stored(content.encode(), uploader))
    assert (again.total, again.created, again.updated, again.rejected) == (12, 0, 0, 9)


def test_job__a_superusers_import_may_change_staff_accounts() -> None:
    """Update a staff account from a superuser's import."""
    User.objects.create_user("staffer", email="staff@example.com", is_staff=True)
    user_import = run(stored(HEADER + "staffer,staff@example.com,Staff,Er\n", user_with("root", superuser=True)))
    assert (user_import.updated, user_import.rejected) == (1, 0)
    assert User.objects.get(username="staffer").first_name == "Staff"


@pytest.mark.parametrize(("content", "message"), [
    ("username,email\nada,ada@example.com\n", "The header is missing the columns first_name, last_name."),
    (HEADER.encode() + b"ada,ada@example.com,Ad\xe9,L\n", "The file is not UTF-8 text"),
])
def test_job__a_file_it_cannot_read_fails_at_once(uploader: User, content: str | bytes, message: str) -> None:
    """Fail the import and the job without retry when the file is unreadable, with the reason on the import."""
    user_import = stored(content, uploader)
    with pytest.raises(UnrecoverableError, match="The "):
        import_users(import_id=user_import.pk)
    user_import.refresh_from_db()
    assert user_import.status == "failed" and message in user_import.error
    assert not User.objects.filter(username="ada").exists()


def test_job__a_file_gone_from_storage_fails_at_once(uploader: User) -> None:
    """Fail the import without retry when its file was removed from storage."""
    user_import = stored(HEADER, uploader)
    user_import.file.storage.delete(user_import.file.name)
    with pytest.raises(UnrecoverableError, match="The uploaded file is gone from storage"):
        import_users(import_id=user_import.pk)
    user_import.refresh_from_db()
    assert user_import.status == "failed" and user_import.error.startswith("The uploaded file is gone from storage")


def test_job__a_finished_import_is_not_run_again(uploader: User) -> None:
    """Complete a second run of a finished import without touching it."""
    user_import = run(stored(HEADER + "ada,ada@example.com,,\n", uploader))
    assert import_users(import_id=user_import.pk) == {"import_id": user_import.pk, "skipped": "it is done"}
    assert import_users(import_id=10**9) == {"import_id": 10**9, "skipped": "the import was deleted"}


@override_settings(IMPORTS_MAX_BYTES=0, IMPORTS_BATCH_SIZE="500")
def test_checks__bad_settings_are_reported() -> None:
    """Report a size limit below 1 byte and a batch size that is not a whole number, naming the fix."""
    errors = {error.id: error for error in run_checks() if error.id.startswith("imports.")}
    assert errors == {
        "imports.E001": Error("IMPORTS_MAX_BYTES is 0.", hint="Use a whole number of bytes ≥ 1 (default 52428800, "
                              "50 MB).", id="imports.E001"),
        "imports.E002": Error("IMPORTS_BATCH_SIZE is '500'.", hint="Use a whole number of rows from 1 to 10,000 "
                              "(default 500).", id="imports.E002"),
    }


# --- end to end, with a real worker process -----------------------------------------------------------------


def test_e2e__good_rows_imported_bad_rows_reported_and_a_reupload_changes_nothing(uploader: User, workers) -> None:
    """Upload in the admin; a worker imports the good rows, reports each bad one; the same file again does nothing."""
    User.objects.create_user("taken", email="owner@example.com")
    User.objects.create_user("grace-old", email="Grace@example.com", password="kept")  # an update keeps it
    content = (HEADER
               + "ada,ada@example.com,Ada,Lovelace\n"       # 2: created
               + "grace,GRACE@example.com,Grace,Hopper\n"  # 3: updated (matched by email, any case)
               + "bob,not-an-email,Bob,B\n"                 # 4: bad email
               + ",carol@example.com,Carol,C\n"             # 5: missing username
               + "ada2,ADA@example.com,Ada,Again\n"         # 6: duplicate of line 2
               + "taken,dan@example.com,Dan,D\n"            # 7: username of another user
               + "eve,eve@example.com,,\n")                 # 8: created
    proc = workers.start("rqworker", "imports")
    client = logged_in(uploader)
    users_before = User.objects.count()

    def finished(pk: int) -> bool:
        return UserImport.objects.get(pk=pk).status in ("done", "failed")

    upload(client, "users.csv", content)
    first = UserImport.objects.get()
    wait_for(lambda: finished(first.pk), 60, "the first import to finish", proc)
    first.refresh_from_db()
    assert (first.status, first.error, first.progress) == ("done", "", 100)
    assert (first.total, first.created, first.updated, first.rejected) == (7, 2, 1, 4)
    assert User.objects.count() == users_before + 2
    assert {u.username: (u.first_name, u.has_usable_password()) for u in
            User.objects.filter(username__in=["ada", "grace", "eve"])} == {
        "ada": ("Ada", False), "grace": ("Grace", True), "eve": ("", False)}
    response = client.get(reverse("imports:report", args=[first.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    report = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert report == [
        ["line", "username", "email", "first_name", "last_name", "reason"],
        ["4", "bob", "not-an-email", "Bob", "B", "email 'not-an-email' is not a valid email address"],
        ["5", "", "carol@example.com", "Carol", "C", "username is required"],
        ["6", "ada2", "ADA@example.com", "Ada", "Again", "duplicate email: line 2 of this file has it"],
        ["7", "taken", "dan@example.com", "Dan", "D", "username 'taken' is taken by another user"],
    ]
    handle = get_queue("imports").get_job(first.job_id)
    assert handle.return_value() == {"import_id": first.pk, "total": 7, "created": 2, "updated": 1, "rejected": 4}
    assert handle.progress == 100

    snapshot = list(User.objects.order_by("pk").values_list("pk", "username", "email", "first_name", "last_name"))
    upload(client, "users.csv", content)
    second = UserImport.objects.exclude(pk=first.pk).get()
    wait_for(lambda: finished(second.pk), 60, "the second import to finish", proc)
    second.refresh_from_db()
    assert (second.status, second.total, second.created, second.updated, second.rejected) == ("done", 7, 0, 0, 4)
    assert list(User.objects.order_by("pk").values_list("pk", "username", "email", "first_name",
                                                        "last_name")) == snapshot


# --- a large file -------------------------------------------------------------------------------------------


def test_job__100k_rows_import_with_memory_bounded_well_below_the_file_size(uploader: User) -> None:
    """Import 100,000 rows while Python's peak allocation stays under a quarter of the file's size.

    tracemalloc counts every Python allocation of the job (rows, ORM objects, query strings, the CSV reader's
    buffers). Reading the file whole would take at least its size at once (its bytes; the decoded text as much
    again), so a peak under size / 4 shows it is streamed and that nothing grows with the row count.
    """
    rows = 100_000
    relative = "imports/tests/100k.csv"
    path = Path(settings.MEDIA_ROOT, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    surname = "Featherstonehaugh-Cholmondeley-Marjoribanks"  # wide but valid names make a ~15 MB file
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        for n in range(rows):
            f.write(f"user{n:06d},user{n:06d}@imports-example.com,Firstname{n:06d} {surname},{surname} {n}\n")
    size = path.stat().st_size
    user_import = UserImport.objects.create(created_by=uploader, file=relative)

    tracemalloc.start()
    started = time.monotonic()
    try:
        import_users(import_id=user_import.pk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started

    user_import.refresh_from_db()
    assert (user_import.status, user_import.total, user_import.created, user_import.rejected) == (
        "done", rows, rows, 0)
    assert User.objects.filter(email__endswith="@imports-example.com").count() == rows
    print(f"100k rows: file {size / 2**20:.1f} MiB, peak Python allocation {peak / 2**20:.1f} MiB, {elapsed:.1f} s")
    assert size > 10 * 2**20  # the premise: a file whose whole read the bound would catch
    assert peak < size / 4, f"peak {peak:,} bytes for a {size:,}-byte file"
