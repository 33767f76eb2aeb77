"""One CSV row of a user import, checked on its own (the checks that need the database or the rest of the file
are in :mod:`imports.importer`).

Values are stripped of surrounding spaces. A row is rejected, with the first reason found, when:

- ``username`` is empty, longer than the user model's field allows, or not valid for Django's username validator
  (letters, digits and ``@ . + - _``); it is NFKC-normalized first, as Django's user forms do;
- ``email`` is empty, longer than the field allows, or not a valid address; its domain is lower-cased, as
  ``UserManager.normalize_email`` does;
- ``first_name`` or ``last_name`` is longer than the field allows (an empty one is fine, and clears the name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .csvfile import COLUMNS

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Row:
    """A row whose values passed the checks of this module."""

    line: int
    values: tuple[str, ...]  # as in the file, in COLUMNS order (for the report)
    username: str
    email: str
    first_name: str
    last_name: str

    @property
    def email_key(self) -> str:
        return self.email.lower()

    @property
    def username_key(self) -> str:
        return self.username.lower()


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    values: tuple[str, ...]
    reason: str


@cache
def _max_lengths() -> dict[str, int]:
    opts = get_user_model()._meta
    return {column: getattr(opts.get_field(column), "max_length", None) or 0 for column in COLUMNS}


def first_line(end_line: int, record: dict[str | None, Any]) -> int:
    """The line a record starts on, given the reader's ``line_num`` after it (quoted values may span lines)."""
    breaks = 0
    for value in record.values():
        for text in value if isinstance(value, list) else (value,):
            if text and ("\n" in text or "\r" in text):
                breaks += len(_LINE_BREAK.findall(text))
    return end_line - breaks


def values_of(record: dict[str | None, Any]) -> tuple[str, ...]:
    """The row's values of the import's columns, "" for a cell the row lacks."""
    return tuple(record.get(column) or "" for column in COLUMNS)


def is_blank(values: tuple[str, ...]) -> bool:
    return not any(value.strip() for value in values)


def check(line: int, values: tuple[str, ...]) -> Row | Rejected:
    """The row checked on its own: a :class:`Row` to import, or why it is :class:`Rejected`."""
    user_model = get_user_model()
    limits = _max_lengths()
    username, email, first_name, last_name = (value.strip() for value in values)

    def rejected(reason: str) -> Rejected:
        return Rejected(line, values, reason)

    if not username:
        return rejected("username is required")
    username = user_model.normalize_username(username)
    if len(username) > limits["username"]:
        return rejected(f"username is longer than {limits['username']} characters")
    try:
        user_model.username_validator(username)
    except ValidationError as e:
        return rejected(f"username {username!r} is not valid: {' '.join(e.messages)}")
    if not email:
        return rejected("email is required")
    if len(email) > limits["email"]:
        return rejected(f"email is longer than {limits['email']} characters")
    try:
        validate_email(email)
    except ValidationError:
        return rejected(f"email {email!r} is not a valid email address")
    email = BaseUserManager.normalize_email(email)
    for column, value in (("first_name", first_name), ("last_name", last_name)):
        if len(value) > limits[column]:
            return rejected(f"{column} is longer than {limits[column]} characters")
    return Row(line, values, username, email, first_name, last_name)
