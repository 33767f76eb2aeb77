"""Reading a user import's file and writing its users, with memory bounded whatever the file's size.

- The file is streamed from storage (``io.TextIOWrapper`` over the storage file, ``csv.DictReader`` over that):
  only the current batch of rows is in memory, never the file.
- Rows are written in batches of ``IMPORTS_BATCH_SIZE`` (500), each in one transaction together with the
  import's counts and progress, so that the admin's numbers always match the users written. Per batch: one query
  for the users whose email or username matches the batch's (case-insensitively), one ``bulk_create`` and one
  ``bulk_update``. No index of ``auth_user`` serves a lower-cased match, so that query reads the whole user table:
  with many users, add indexes on ``lower(email)`` and ``lower(username)`` (see docs/imports.md).
- A row matches a user by email, case-insensitively (as the database lower-cases: SQLite only ASCII letters).
  No match: a user is created, with an unusable password. A match: its username, first and last name become the
  file's; the email is left as it is. A match counts as updated only when a value actually changed, so importing
  the same file again creates nothing and updates nothing.
- Rejected, with the reason in the report (besides the checks of :mod:`imports.rows`): an email that an earlier
  imported row of the file already had (the first one wins; the later one is rejected, never merged); a username
  an earlier imported row of the file had, or that another user holds (case-insensitively, as Django's
  ``UserCreationForm``); an email two or more users share (which one to update is unknown); a row that matches a
  staff or superuser account, unless a superuser uploaded the file.
- Emails and usernames of the rows already imported are remembered in a scratch SQLite file on disk, not in
  Python sets, which would grow with the file (about 200 bytes a row: more than the row itself takes in the file).
"""

from __future__ import annotations

import csv
import io
import secrets
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.files import File
from django.db import reset_queries, transaction
from django.db.models import Q
from django.db.models.functions import Lower

from . import conf
from .csvfile import COLUMNS, ENCODING, InvalidFile, check_header
from .models import UserImport
from .rows import Rejected, Row, check, first_line, is_blank, values_of

LOOKUP_CHUNK = 500  # values per IN (...) list
UPDATED_FIELDS = ("username", "first_name", "last_name")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Counts:
    total: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0


class SeenInFile:
    """The emails and usernames (lower-cased) of the rows imported so far, and their lines: a table in a scratch
    SQLite file, whose page cache (2 MB) bounds the memory it takes."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute("CREATE TABLE seen (kind TEXT, value TEXT, line INTEGER, PRIMARY KEY (kind, value)) "
                        "WITHOUT ROWID")

    def lines(self, kind: str, values: Iterable[str]) -> dict[str, int]:
        """``{value: line}`` for those of ``values`` an earlier batch imported."""
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(values))):
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT value, line FROM seen WHERE kind = ? AND value IN ({marks})",  # noqa: S608
                                         [kind, *chunk]))
        return found

    def add(self, kind: str, lines: dict[str, int]) -> None:
        with self.db:  # one transaction, not one per row
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO seen VALUES (?, ?, ?)", ((kind, v, n) for v, n in lines.items()))

    def close(self) -> None:
        self.db.close()


class Report:
    """The CSV of rejected rows (line, the row's values, reason), written to a local file as rows come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("w", encoding=ENCODING, newline="")  # with a BOM, so that Excel reads UTF-8
        self.writer = csv.writer(self.file)
        self.writer.writerow(["line", *COLUMNS, "reason"])

    def add(self, rejected: Rejected) -> None:
        # A cell starting with "=", "+", "-" or "@" is a formula to a spreadsheet: quote it (OWASP's advice).
        cells = ["'" + value if value.startswith(FORMULA_START) else value for value in rejected.values]
        self.writer.writerow([rejected.line, *cells, rejected.reason])

    def close(self) -> None:
        self.file.close()


def import_file(user_import: UserImport, on_progress: Callable[[int], None] | None = None) -> Counts:
    """Import the rows of ``user_import``'s file; save its counts (each batch) and its report (at the end).

    ``on_progress(percent)`` is called after each batch but the last commits (percent of the file's bytes read).

    Raises:
        InvalidFile: the header lacks a column, or the file is not UTF-8 or not CSV.
    """
    storage_file = user_import.file
    size = max(storage_file.storage.size(storage_file.name), 1)
    with tempfile.TemporaryDirectory(prefix="user-import-") as scratch, \
            storage_file.storage.open(storage_file.name, "rb") as binary:
        run = _Run(user_import, Path(scratch))
        try:
            text = io.TextIOWrapper(binary, encoding=ENCODING, newline="")
            run.read(csv.DictReader(text), lambda: min(int(100 * binary.tell() / size), 99), on_progress)
        finally:
            run.close()
        _save_report(user_import, run.report.path if run.counts.rejected else None)
    return run.counts


class _Run:
    """One run over the file: the counts, the report, the emails and usernames claimed so far."""

    def __init__(self, user_import: UserImport, scratch: Path) -> None:
        self.user_import = user_import
        creator = user_import.created_by
        self.may_change_staff = bool(creator and creator.is_superuser)
        self.counts = Counts()
        self.seen = SeenInFile(scratch / "seen.sqlite3")
        self.report = Report(scratch / "rejected.csv")

    def close(self) -> None:
        self.seen.close()
        self.report.close()

    def read(self, reader: csv.DictReader, percent: Callable[[], int],
             on_progress: Callable[[int], None] | None) -> None:
        """Check each row as it is read; write the rows a batch at a time."""
        batch_size = conf.batch_size()
        rows: list[Row] = []
        read = 0
        try:
            reader.fieldnames = check_header(reader.fieldnames)
            for record in reader:
                values = values_of(record)
                if is_blank(values):
                    continue
                read += 1
                checked = check(first_line(reader.line_num, record), values)
                if isinstance(checked, Rejected):
                    self.reject(checked)
                else:
                    rows.append(checked)
                if read == batch_size:
                    self.write(rows, read, percent(), on_progress)
                    rows, read = [], 0
        except UnicodeDecodeError as e:
            raise InvalidFile(f"The file is not UTF-8 text (a byte after line {reader.line_num} is not): "
                              "save it as \"CSV UTF-8\".") from e
        except csv.Error as e:
            raise InvalidFile(f"The CSV is malformed at line {reader.line_num}: {e}.") from e
        self.write(rows, read, 99, None)

    def reject(self, rejected: Rejected) -> None:
        self.report.add(rejected)
        self.counts.rejected += 1

    def write(self, rows: list[Row], read: int, percent: int, on_progress: Callable[[int], None] | None) -> None:
        """Write one batch of checked rows in one transaction, with the import's counts and progress."""
        with transaction.atomic():
            claimed = self.apply(rows)
            self.counts.total += read
            UserImport.objects.filter(pk=self.user_import.pk).update(progress=percent, **asdict(self.counts))
        for kind, lines in claimed.items():
            self.seen.add(kind, lines)
        reset_queries()  # with DEBUG on, the connection logs every query: keep that log from growing with the file
        if on_progress is not None:
            on_progress(percent)

    def apply(self, rows: list[Row]) -> dict[str, dict[str, int]]:
        """Create or update the users of ``rows``; reject the rows that conflict. Returns what the batch claimed."""
        user_model = get_user_model()
        by_email, holders = _users_by(user_model, {row.email_key for row in rows},
                                      {row.username_key for row in rows})
        emails = self.seen.lines("email", (row.email_key for row in rows))
        usernames = self.seen.lines("username", (row.username_key for row in rows))
        claimed: dict[str, dict[str, int]] = {"email": {}, "username": {}}
        new, changed = [], []
        for row in rows:
            matches = by_email.get(row.email_key, [])
            reason = self.conflict(row, emails, usernames, matches, holders.get(row.username_key, []))
            if reason:
                self.reject(Rejected(row.line, row.values, reason))
                continue
            emails[row.email_key] = claimed["email"][row.email_key] = row.line
            usernames[row.username_key] = claimed["username"][row.username_key] = row.line
            if not matches:
                new.append(user_model(username=row.username, email=row.email, first_name=row.first_name,
                                      last_name=row.last_name, password=_unusable_password()))
                continue
            [user] = matches
            if (user.username, user.first_name, user.last_name) != (row.username, row.first_name, row.last_name):
                user.username, user.first_name, user.last_name = row.username, row.first_name, row.last_name
                changed.append(user)
        user_model._default_manager.bulk_create(new)
        user_model._default_manager.bulk_update(changed, UPDATED_FIELDS)
        self.counts.created += len(new)
        self.counts.updated += len(changed)
        return claimed

    def conflict(self, row: Row, emails: dict[str, int], usernames: dict[str, int], matches: list[Any],
                 holders: list[Any]) -> str:
        """Why ``row`` cannot be imported, or ""."""
        if row.email_key in emails:
            return f"duplicate email: line {emails[row.email_key]} of this file has it"
        if len(matches) > 1:
            return f"{len(matches)} users have the email {row.email!r}: which one to update is unknown"
        match = matches[0] if matches else None
        if match is not None and (match.is_staff or match.is_superuser) and not self.may_change_staff:
            return "the email is a staff account's: only a superuser's import may change it"
        if row.username_key in usernames:
            return f"username {row.username!r} is already used on line {usernames[row.username_key]} of this file"
        if any(holder.pk != getattr(match, "pk", None) for holder in holders):
            return f"username {row.username!r} is taken by another user"
        return ""


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start:start + LOOKUP_CHUNK]


def _users_by(user_model: Any, emails: set[str], usernames: set[str]
              ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """The users whose email is one of ``emails``, and those whose username is one of ``usernames``, each
    lower-cased by the database: ``({email: [users]}, {username: [users]})``. One query per 500 of each (no
    index serves a lower-cased match: each query reads the whole user table)."""
    by_email: dict[str, list[Any]] = defaultdict(list)
    by_username: dict[str, list[Any]] = defaultdict(list)
    columns = ("pk", "is_staff", "is_superuser", "email", *UPDATED_FIELDS)
    email_chunks, username_chunks = list(_chunks(sorted(emails))), list(_chunks(sorted(usernames)))
    for index in range(max(len(email_chunks), len(username_chunks))):
        email_keys = email_chunks[index] if index < len(email_chunks) else []
        username_keys = username_chunks[index] if index < len(username_chunks) else []
        queryset = (user_model._default_manager
                    .annotate(import_email=Lower("email"), import_username=Lower("username"))
                    .filter(Q(import_email__in=email_keys) | Q(import_username__in=username_keys))
                    .only(*columns))
        for user in queryset:
            if user.import_email in emails:
                by_email[user.import_email].append(user)
            if user.import_username in usernames:
                by_username[user.import_username].append(user)
    return by_email, by_username


def _unusable_password() -> str:
    """What ``set_unusable_password()`` stores (the "!" prefix and a random suffix, so that no two users' values
    are equal), from one ``os.urandom`` call instead of its 40 ``secrets.choice`` calls: a third of the time of a
    100,000-row import went there."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_hex(20)


def _save_report(user_import: UserImport, path: Path | None) -> None:
    """Store the report (or none, when no row was rejected) on the import, replacing an earlier run's."""
    old = user_import.report.name
    user_import.report.name = ""
    if path is not None:
        with path.open("rb") as content:
            user_import.report.save(f"user-import-{user_import.pk}-rejected.csv", File(content), save=False)
    if UserImport.objects.filter(pk=user_import.pk).update(report=user_import.report.name) == 0 and path:
        user_import.report.storage.delete(user_import.report.name)  # the import was deleted meanwhile
    if old and old != user_import.report.name:
        user_import.report.storage.delete(old)
