"""The JSON API: ``/api/notifications/...``.

The in-app inbox (``GET /api/notifications/``, ``POST <id>/read/``, ``POST read-all/``) shows each user their
own delivered in-app notifications only, staff included (``notifications.inbox``).

- Session authentication, with Django's CSRF check for unsafe methods (as DRF's ``SessionAuthentication``
  does): the views are exempt from the middleware so that a failed check answers JSON, then run the same
  check themselves. Not logged in → 401.
- Staff act for any user; other users only for themselves and only see their own notifications (another's
  is a 404, so ids of others' notifications are not confirmed).
- Errors are JSON: ``{"error": "...", "errors": {"<field>": ["..."]}}``; 400 for a bad body (field named),
  404 for an unknown user or notification, 409 when the notification has moved on, 413 for a body over
  ``DATA_UPLOAD_MAX_MEMORY_SIZE``, never a traceback.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import EmptyPage, Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from . import inbox, services
from .exceptions import InvalidNotification, NotChangeable, NotFound, Undeliverable
from .forms import ReminderForm, RescheduleForm, WelcomeForm
from .models import Notification, Status

logger = logging.getLogger(__name__)

View = Callable[..., JsonResponse]


class ApiError(Exception):
    """An error answer: raised inside a view, turned into JSON by :func:`api_view`."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> Any:  # the reason, not a 403 response
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    reason: Any = check.process_view(request, lambda _request: HttpResponse(), (), {})  # None, or _reject's
    return reason


def api_view(*methods: str) -> Callable[[View], View]:
    """Allow ``methods``, require a logged-in user (and CSRF for unsafe methods), answer errors as JSON."""

    allowed = (*methods, "HEAD") if "GET" in methods else methods

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            try:
                if request.method not in allowed:
                    response = error(405, f"Method {request.method} is not allowed here.")
                    response["Allow"] = ", ".join(allowed)
                    return response
                if not request.user.is_authenticated:
                    return error(401, "Authentication required: log in first.")
                if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
                    reason = _csrf_failure(request)
                    if reason:
                        return error(403, f"CSRF check failed: {reason}")
                return view(request, *args, **kwargs)
            except ApiError as e:
                return error(e.status, e.message, e.errors)
            except NotFound as e:
                return error(404, str(e))
            except NotChangeable as e:
                return error(409, str(e))
            except RequestDataTooBig:  # reading the body (the view, or the CSRF check's request.POST)
                return error(413, f"The request body is over the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,}-byte limit "
                                  "(DATA_UPLOAD_MAX_MEMORY_SIZE): send less, or put large content somewhere else and "
                                  "send its id.")
            except Exception:
                logger.exception("Notifications API: %s %s failed", request.method, request.path)
                return error(500, "Internal server error.")

        return never_cache(csrf_exempt(wrapper))

    return decorator


def error(status: int, message: str, errors: dict[str, list[str]] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status=status)


def _valid(form_class: type[forms.Form], request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, checked by ``form_class``; its cleaned data."""
    try:
        body = json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, "The request body is not valid JSON.", {"body": [str(e)]}) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", {"body": ["Send a JSON object."]})
    form = form_class(data=body)
    if not form.is_valid():
        errors = {field: [e["message"] for e in items] for field, items in form.errors.get_json_data().items()}
        raise ApiError(400, "Invalid fields: " + ", ".join(errors) + ".", errors)
    return form.cleaned_data


def _for_user(request: HttpRequest, user_id: int) -> int:
    """``user_id``, if the requester may act for that user (staff, or themselves)."""
    if not request.user.is_staff and user_id != request.user.pk:
        raise ApiError(403, "You can only do this for yourself.", {"user_id": ["Use your own user id."]})
    return user_id


def _notification(request: HttpRequest, pk: int) -> Notification:
    """The notification ``pk``, if the requester may see it; otherwise 404 (others' ids stay unconfirmed)."""
    visible = Notification.objects.all()
    if not request.user.is_staff:
        visible = visible.filter(recipient_id=request.user.pk)
    found = visible.filter(pk=pk).first()
    if found is None:
        raise NotFound(f"Notification {pk} does not exist.")
    return found


def as_json(notification: Notification, request: HttpRequest) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": notification.pk,
        "user_id": notification.recipient_id,
        "kind": notification.kind,
        "channel": notification.channel,
        "status": notification.status,
        "attempts": notification.attempts,
        "scheduled_for": notification.scheduled_for.isoformat() if notification.scheduled_for else None,
        "sent_at": notification.sent_at.isoformat() if notification.sent_at else None,
        "created_at": notification.created_at.isoformat(),
        "updated_at": notification.updated_at.isoformat(),
    }
    if request.user.is_staff:  # operators' details: SMTP errors, the queue's job
        data["last_error"] = notification.last_error
        data["job_id"] = notification.job_id
    return data


def _accepted(notification: Notification) -> int:
    """202 while the notification waits for delivery (queued, or pending for the outbox), else 200."""
    return 202 if notification.status in (Status.PENDING, Status.QUEUED) else 200


@api_view("POST")
def welcome(request: HttpRequest) -> JsonResponse:
    """``POST {"user_id"}``: send the user's welcome email (once; a repeat answers the first one)."""
    data = _valid(WelcomeForm, request)
    try:
        notification = services.send_welcome_email(_for_user(request, data["user_id"]))
    except Undeliverable as e:
        raise ApiError(400, str(e), {"user_id": [str(e)]}) from None
    return JsonResponse(as_json(notification, request), status=_accepted(notification))


@api_view("POST")
def reminders(request: HttpRequest) -> JsonResponse:
    """``POST {"user_id", "at", "message"?}``: remind the user at ``at`` (ISO 8601 with a time zone)."""
    data = _valid(ReminderForm, request)
    try:
        result = services.schedule_reminder(_for_user(request, data["user_id"]), data["at"],
                                            message=data["message"])
    except Undeliverable as e:
        raise ApiError(400, str(e), {"user_id": [str(e)]}) from None
    except InvalidNotification as e:  # cannot happen after the form; kept so a change there answers 400
        raise ApiError(400, str(e), {"at": [str(e)]}) from None
    notification = result["notification"]
    body = {"scheduled": result["scheduled"], "date": result["date"], "notification": as_json(notification, request)}
    return JsonResponse(body, status=_accepted(notification))


@api_view("GET", "PATCH", "DELETE")
def detail(request: HttpRequest, pk: int) -> JsonResponse:
    """``GET``: the notification. ``PATCH {"at"}``: reschedule it. ``DELETE``: cancel it (before it starts)."""
    notification = _notification(request, pk)
    if request.method == "PATCH":
        data = _valid(RescheduleForm, request)
        notification = services.reschedule(notification.pk, data["at"])
        return JsonResponse(as_json(notification, request), status=_accepted(notification))
    if request.method == "DELETE":
        notification = services.cancel(notification.pk)
    return JsonResponse(as_json(notification, request))


PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes "²"


def as_inbox_json(notification: Notification) -> dict[str, Any]:
    """An inbox entry: what a UI shows. ``title`` and ``body`` are plain text (escape them in HTML)."""
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "created_at": notification.created_at.isoformat(),
        "sent_at": notification.sent_at.isoformat() if notification.sent_at else None,
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
        "unread": notification.read_at is None,
    }


def _whole_number(request: HttpRequest, name: str, default: int) -> int:
    value = request.GET.get(name, "")
    if value == "":
        return default
    if not WHOLE_NUMBER.fullmatch(value) or int(value) < 1:
        raise ApiError(400, f"Invalid query parameter: {name}.", {name: ["Enter a whole number of 1 or more."]})
    return int(value)


@api_view("GET")
def inbox_list(request: HttpRequest) -> JsonResponse:
    """``GET ?unread=1&page=N&page_size=M``: the user's delivered in-app notifications, newest first.

    ``page_size`` is 20 by default and at most 100 (a larger one gets 100). A page past the last is a 404;
    the first page of an empty inbox is an empty list. ``next`` and ``previous`` are page numbers (or null);
    ``unread`` counts the user's unread notifications, whatever the filter.
    """
    unread = request.GET.get("unread", "").lower()
    if unread not in TRUE + FALSE:
        raise ApiError(400, "Invalid query parameter: unread.", {"unread": ["Use unread=1 or unread=0."]})
    page_size = min(_whole_number(request, "page_size", PAGE_SIZE), MAX_PAGE_SIZE)
    number = _whole_number(request, "page", 1)
    paginator = Paginator(inbox.inbox(request.user, unread=unread in TRUE), page_size)
    try:
        page = paginator.page(number)
    except EmptyPage:
        raise NotFound(f"Page {number} does not exist: there are {paginator.num_pages}.") from None
    return JsonResponse({
        "count": paginator.count,
        "page": page.number,
        "pages": paginator.num_pages,
        "page_size": page_size,
        "next": page.next_page_number() if page.has_next() else None,
        "previous": page.previous_page_number() if page.has_previous() else None,
        "unread": paginator.count if unread in TRUE else inbox.unread_count(request.user),
        "results": [as_inbox_json(n) for n in page.object_list],
    })


@api_view("POST")
def inbox_read(request: HttpRequest, pk: int) -> JsonResponse:
    """``POST``: mark the notification read (once: a repeat answers 200 with the first ``read_at``)."""
    return JsonResponse(as_inbox_json(inbox.mark_read(request.user, pk)))


@api_view("POST")
def inbox_read_all(request: HttpRequest) -> JsonResponse:
    """``POST``: mark all the user's unread notifications read; ``{"marked_read": n}``."""
    return JsonResponse({"marked_read": inbox.mark_all_read(request.user)})
