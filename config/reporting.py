"""Error reports that show no password or token: the DEBUG 500 page, its text form and the email to ``ADMINS``.

Django's ``SafeExceptionReporterFilter`` hides the settings and ``request.META`` entries whose *name* looks secret
(``PASSWORD``, ``TOKEN``, ...). It still shows the password in ``redis://:password@host`` (``QUEUES_REDIS['URL']``;
``REDIS_URL``, ``DATABASE_URL`` and ``EMAIL_URL`` in ``request.META``, which holds the environment under
``runserver``), every frame's locals (redis-py's connection keeps the password) and the exception message. The
settings name these classes::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.SecretsFilter"
    DEFAULT_EXCEPTION_REPORTER = "config.reporting.SecretsReporter"

A *known secret* is a string setting or environment variable whose name ends in ``PASSWORD`` / ``PASS`` /
``TOKEN`` or holds ``SECRET`` (at any depth: ``DATABASES['default']['PASSWORD']``), or the password of a URL in
one. Known secrets of :data:`MIN_SEARCHED_LENGTH` characters or more are masked wherever they appear; shorter ones
only where a value is exactly the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote

from django.conf import settings
from django.http import HttpRequest
from django.template.defaultfilters import pprint
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

MASK = SafeExceptionReporterFilter.cleansed_substitute
SECRET_NAME = re.compile(r"PASS(WORD)?$|TOKEN$|SECRET", re.IGNORECASE)
# scheme://user:password@ - the password is what lies between the first ':' after the user and the '@'.
URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<password>[^@\s/]+)(?=@)", re.IGNORECASE)
MIN_SEARCHED_LENGTH = 4  # a shorter secret would mask the same letters all over the report
MAX_DEPTH = 6


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it replaced by the mask."""
    return URL_PASSWORD.sub(lambda match: match["head"] + MASK, text)


def _url_passwords(text: str) -> Iterator[str]:
    for match in URL_PASSWORD.finditer(text):
        yield match["password"]
        yield unquote(match["password"])  # as the client library holds it


def _collect(name: str, value: Any, found: set[str], depth: int = 0) -> None:
    if isinstance(value, str):
        if SECRET_NAME.search(name):
            found.add(value)
        found.update(_url_passwords(value))
    elif depth < MAX_DEPTH and isinstance(value, Mapping):  # RQ_QUEUES is a Mapping, not a dict
        for key, item in value.items():
            _collect(str(key), item, found, depth + 1)
    elif depth < MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(name, item, found, depth + 1)


def known_secrets() -> frozenset[str]:
    """Every secret in the settings and the environment now (empty strings and the mask left out)."""
    found: set[str] = set()
    for name in dir(settings):
        if name.isupper():
            try:
                _collect(name, getattr(settings, name), found)
            except Exception:  # noqa: S112 - a broken setting must not break the error report
                continue
    for name, value in os.environ.items():
        _collect(name, value, found)
    found.discard("")
    found.discard(MASK)
    return frozenset(found)


def _spellings(secret: str) -> Iterable[str]:
    """``secret`` as a report may print it: as is, in a repr, HTML-escaped, percent-encoded."""
    in_repr = repr(secret)[1:-1]
    return {secret, in_repr, escape(secret), escape(in_repr), quote(secret, safe="")}


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every URL password and every known secret (of the searched length) replaced by the mask."""
    text = mask_url_passwords(text)
    searched = (secret for secret in secrets if len(secret) >= MIN_SEARCHED_LENGTH)
    spellings = {spelling for secret in searched for spelling in _spellings(secret)}
    for spelling in sorted(spellings, key=len, reverse=True):  # a secret that holds another one goes first
        text = text.replace(spelling, MASK)
    return text


class Formatted:
    """A frame variable already formatted (and masked): the report prints ``text`` as the value."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SecretsFilter(SafeExceptionReporterFilter):
    """Django's filter, which also masks URL passwords and frame variables holding a known secret.

    It is active with DEBUG on as well: ``@sensitive_variables`` and ``@sensitive_post_parameters`` are honoured
    on the DEBUG page too.
    """

    def is_active(self, request: HttpRequest | None) -> bool:
        return True

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        """Mask the setting (or request.META entry) as Django does, and the password of any URL in a string."""
        cleansed = super().cleanse_setting(key, value)  # recurses into dicts, lists and tuples through this method
        if isinstance(cleansed, str) and cleansed != self.cleansed_substitute:
            return mask_url_passwords(cleansed)
        return cleansed

    def get_traceback_frame_variables(self, request: HttpRequest | None,  # type: ignore[override]
                                      tb_frame: Any) -> list[tuple[str, Any]]:  # a list, as Django's own returns
        """Each variable formatted as the report prints it, with the known secrets in it masked."""
        secrets = known_secrets()
        variables = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if isinstance(value, str) and value in secrets:
                value = self.cleansed_substitute
            variables.append((name, Formatted(mask_secrets(pprint(value), secrets))))
        return variables


class SecretsReporter(ExceptionReporter):
    """Django's reporter, masking what its filter does not see (the exception message, the request's path)."""

    # Django's rendering with secrets replaced by asterisks: still the safe HTML (and text) it was.
    def get_traceback_html(self) -> SafeString:
        return mark_safe(mask_secrets(super().get_traceback_html(), known_secrets()))  # noqa: S308

    def get_traceback_text(self) -> SafeString:
        return mark_safe(mask_secrets(super().get_traceback_text(), known_secrets()))  # noqa: S308
