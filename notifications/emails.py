"""The email of a notification: its templates, rendered for one user.

``templates/notifications/email/<kind>_subject.txt`` (one line), ``<kind>.txt`` (the plain-text body,
required) and ``<kind>.html`` (an HTML alternative, optional). The context is the user, the notification
and the notification's own ``context`` dict. A new kind needs only new templates.
"""

from __future__ import annotations

from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string

from .models import Notification

TEMPLATE_DIR = "notifications/email"


def template_names(kind: str) -> dict[str, str]:
    return {part: f"{TEMPLATE_DIR}/{kind}{suffix}"
            for part, suffix in (("subject", "_subject.txt"), ("text", ".txt"), ("html", ".html"))}


def has_templates(kind: str) -> bool:
    """Whether ``kind`` has the templates an email needs (a subject and a plain-text body)."""
    names = template_names(kind)
    try:
        get_template(names["subject"])
        get_template(names["text"])
    except TemplateDoesNotExist:
        return False
    return True


def build_message(notification: Notification, user: Any) -> EmailMultiAlternatives:
    """The email for ``notification`` to ``user`` (``DEFAULT_FROM_EMAIL`` as the sender).

    Raises:
        TemplateDoesNotExist: the kind's subject or text template is missing.
    """
    names = template_names(notification.kind)
    context = {**notification.context, "user": user, "notification": notification}
    subject = " ".join(render_to_string(names["subject"], context).split())  # one line: no header injection
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(names["text"], context),
        to=[user.email],
        headers={"X-Notification-ID": str(notification.pk)},
    )
    try:
        message.attach_alternative(render_to_string(names["html"], context), "text/html")
    except TemplateDoesNotExist:
        pass  # plain text only
    return message
