"""Write rows of a model to CSV: which fields, the header, each cell made safe to open in a spreadsheet.

Cells hold the stored values (a foreign key's id, a choice's value, ISO 8601 dates, JSON for JSON fields), so a
file reads the same in any locale and can be imported again. A text cell that a spreadsheet would run as a formula
(it begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe, as OWASP's "CSV
Injection" page advises; numbers are not text and are written as they are (``-5`` stays ``-5``).
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.text import capfirst

CHUNK_SIZE = 2000  # rows per query, and per progress report
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportDefinitionError(ValueError):
    """The export names a model or a field that cannot be exported; no retry changes that."""


def export_model(label: str) -> type[models.Model]:
    """The model named ``label`` ("app_label.model_name").

    Raises:
        ExportDefinitionError: no such model is installed (removed or renamed since the export was made).
    """
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as e:
        raise ExportDefinitionError(f"No model {label!r} is installed (removed or renamed since the export was "
                                    "made?): export it again from its admin list.") from e


def export_fields(model: type[models.Model], names: Sequence[str] | None) -> list[models.Field]:
    """The model's fields ``names`` (default: every concrete field, in model order), checked exportable.

    Raises:
        ExportDefinitionError: a name is not a field of the model, or names a many-to-many or reverse relation.
    """
    if not names:
        return [field for field in model._meta.concrete_fields]
    fields: list[models.Field] = []
    for name in names:
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist as e:
            raise ExportDefinitionError(f"{model._meta.label} has no field {name!r}: list field names of the model "
                                        "in export_to_csv_action(fields=...).") from e
        if not getattr(field, "concrete", False) or field.many_to_many:
            raise ExportDefinitionError(f"{model._meta.label}.{name} is a many-to-many or reverse relation, one "
                                        "column cannot hold it: export the model's own fields.")
        fields.append(field)  # type: ignore[arg-type]  # concrete, not many-to-many: a Field
    return fields


def header(fields: Iterable[models.Field]) -> list[str]:
    """The columns' titles: each field's verbose name, capitalized as the admin shows it."""
    return [safe_cell(capfirst(str(field.verbose_name))) for field in fields]


def cell(value: Any) -> str | int | float | decimal.Decimal:
    """One stored value as a CSV cell, text guarded against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return safe_cell(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return safe_cell(str(value))


def safe_cell(text: str) -> str:
    """``text``, with a leading apostrophe if a spreadsheet would take it for a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _key(pk: Any) -> Any:
    """A primary key as stored in the export's JSON list (ints stay ints, anything else is text)."""
    return pk if isinstance(pk, int) else str(pk)


def write_csv(out: IO[bytes], model: type[models.Model], fields: Sequence[models.Field], pks: Sequence[Any],
              on_progress: Callable[[int], None] | None = None) -> int:
    """Write the header and the rows ``pks`` of ``model`` (in that order) to ``out`` as UTF-8 CSV; return the rows
    written. Rows deleted since they were selected are left out.

    Reads ``CHUNK_SIZE`` rows per query (never the whole selection at once) and calls ``on_progress(rows written)``
    after each chunk.
    """
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text)
        writer.writerow(header(fields))
        names = [field.name for field in fields]
        manager = model._default_manager
        written = 0
        for start in range(0, len(pks), CHUNK_SIZE):
            chunk = pks[start:start + CHUNK_SIZE]
            rows = manager.filter(pk__in=chunk).values_list("pk", *names).iterator(chunk_size=CHUNK_SIZE)
            by_pk = {_key(row[0]): row[1:] for row in rows}  # at most CHUNK_SIZE rows, to keep the listed order
            for pk in chunk:
                row = by_pk.get(_key(pk))
                if row is not None:
                    writer.writerow([cell(value) for value in row])
                    written += 1
            if on_progress is not None:
                on_progress(written)
        text.flush()
    finally:
        text.detach()  # leave ``out`` open for the caller
    return written
