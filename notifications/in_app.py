"""The message of an in-app notification: its templates, rendered once for one user.

``templates/notifications/in_app/<kind>_title.txt`` (one line, at most 200 characters) and ``<kind>.txt`` (the
plain-text body). The context is the user, the notification and the notification's own ``context`` dict, as
for email. The delivering job stores the result on the row (``title``, ``body``): the row is the user's inbox
entry, and what they were sent does not change when a template or their name does later.

Both are plain text (the templates turn autoescaping off): escape them where you put them in HTML.
The ``message`` kind renders ``title`` and ``body`` from the context, for messages written elsewhere.
"""

from __future__ import annotations

from typing import Any

from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string

from .models import Notification

TEMPLATE_DIR = "notifications/in_app"
TITLE_LENGTH = Notification._meta.get_field("title").max_length or 200


def template_names(kind: str) -> dict[str, str]:
    return {"title": f"{TEMPLATE_DIR}/{kind}_title.txt", "body": f"{TEMPLATE_DIR}/{kind}.txt"}


def has_templates(kind: str) -> bool:
    """Whether ``kind`` has the templates an in-app message needs (a title and a body)."""
    try:
        for name in template_names(kind).values():
            get_template(name)
    except TemplateDoesNotExist:
        return False
    return True


def render(notification: Notification, user: Any) -> dict[str, str]:
    """``{"title", "body"}`` of ``notification`` for ``user``: the title on one line, cut to 200 characters.

    Raises:
        TemplateDoesNotExist: the kind's title or body template is missing.
    """
    names = template_names(notification.kind)
    context = {**notification.context, "user": user, "notification": notification}
    title = " ".join(render_to_string(names["title"], context).split())
    if len(title) > TITLE_LENGTH:
        title = title[:TITLE_LENGTH - 1] + "…"
    return {"title": title, "body": render_to_string(names["body"], context).strip()}
