"""Validation of the API's JSON bodies, with Django forms: each error is reported under its field's name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.utils.dateparse import parse_datetime


class AwareDateTimeField(forms.Field):
    """An ISO 8601 date and time with a time zone (``Z`` or ``+hh:mm``); a naive one is refused, not guessed."""

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date and time, e.g. 2030-01-31T09:00:00Z.",
        "naive": "Add a time zone to the date and time: end it in Z or +hh:mm.",
    }

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        if not isinstance(value, str):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise forms.ValidationError(self.error_messages["naive"], code="naive")
        return parsed


class UserIdField(forms.Field):
    """A user's primary key as JSON gives it (a number, or a string of digits)."""

    default_error_messages = {"invalid": "Enter a user id (a whole number)."}

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            number = int(value)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if number < 1:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class WelcomeForm(forms.Form):
    user_id = UserIdField()


class ReminderForm(forms.Form):
    user_id = UserIdField()
    at = AwareDateTimeField()
    message = forms.CharField(required=False, max_length=500)


class RescheduleForm(forms.Form):
    at = AwareDateTimeField()
