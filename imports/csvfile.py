"""The CSV format of a user import: its columns, its header, and its text encoding.

The first line must be a header naming at least the columns ``username``, ``email``, ``first_name`` and
``last_name``, in any order, in any letter case (other columns are ignored). The text is UTF-8, with or without
a byte order mark (Excel's "CSV UTF-8" writes one).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import IO

COLUMNS = ("username", "email", "first_name", "last_name")
ENCODING = "utf-8-sig"  # UTF-8, dropping a leading byte order mark when there is one
MAX_HEADER_BYTES = 64 * 1024


class InvalidFile(ValueError):
    """The file is not a CSV the import can read (its message says what to fix)."""


def normalize(fieldnames: Sequence[str]) -> list[str]:
    """Header names as the import matches them: stripped and lower-cased."""
    return [name.strip().lower() for name in fieldnames]


def check_header(fieldnames: Sequence[str] | None) -> list[str]:
    """The normalized header, if it names every column once.

    Raises:
        InvalidFile: the file is empty, or a column is missing or repeated.
    """
    if not fieldnames or not any(name.strip() for name in fieldnames):
        raise InvalidFile("The file is empty: its first line must be the header "
                          f"{','.join(COLUMNS)} (any order).")
    names = normalize(fieldnames)
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise InvalidFile(f"The header is missing the column{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}. The first line must name the columns {', '.join(COLUMNS)} "
                          "(any order); it reads: " + ",".join(fieldnames)[:200])
    repeated = sorted({column for column in COLUMNS if names.count(column) > 1})
    if repeated:
        raise InvalidFile(f"The header names {', '.join(repeated)} more than once: keep one column of each.")
    return names


def read_header(binary: IO[bytes]) -> list[str]:
    """Read only the first line of ``binary`` and check it as the header (see :func:`check_header`).

    Raises:
        InvalidFile: the first line is not UTF-8, is longer than 64 KiB, or lacks a column.
    """
    first = binary.readline(MAX_HEADER_BYTES + 1)
    if len(first) > MAX_HEADER_BYTES:
        raise InvalidFile(f"The first line is over {MAX_HEADER_BYTES // 1024} KiB: it must be the header "
                          f"{','.join(COLUMNS)}. Is this a CSV file?")
    try:
        text = first.decode(ENCODING)
    except UnicodeDecodeError:
        raise InvalidFile("The file is not UTF-8 text: save it as \"CSV UTF-8\".") from None
    return check_header(next(csv.reader([text]), None))
