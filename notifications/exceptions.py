"""The exceptions the notifications services raise. Catch these; the base class is not raised directly."""


class NotificationError(Exception):
    """Base class of this app's errors. Do not raise directly."""


class NotFound(NotificationError, LookupError):
    """A user or a notification that does not exist (the API answers 404)."""


class InvalidNotification(NotificationError, ValueError):
    """Arguments a notification cannot be made from: a naive datetime, an unknown kind (the API answers 400)."""


class Undeliverable(NotificationError):
    """The recipient cannot get this notification on this channel, e.g. a user without an email address."""


class NotChangeable(NotificationError):
    """The notification has moved past the state the operation needs (e.g. cancel after it was sent; 409)."""
