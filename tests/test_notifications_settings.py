"""Email settings from EMAIL_URL and friends: read when good, one clear line when bad, no password echoed."""

from __future__ import annotations

import pytest

from tests.test_settings_env import check, settings_value


def test_email_settings__console_by_default() -> None:
    """Print mail to the console when EMAIL_URL is not set, from webmaster@localhost, with a 10 s timeout."""
    assert settings_value("settings.EMAIL_BACKEND") == "django.core.mail.backends.console.EmailBackend"
    assert settings_value("settings.DEFAULT_FROM_EMAIL, settings.EMAIL_TIMEOUT") == "webmaster@localhost 10"


def test_email_settings__smtp_url_with_credentials_and_tls() -> None:
    """Read host, port, user, password and STARTTLS from an smtp+tls:// URL, and the sender and timeout."""
    values = settings_value(
        "settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_HOST_USER, "
        "settings.EMAIL_HOST_PASSWORD, settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL, settings.DEFAULT_FROM_EMAIL, "
        "settings.EMAIL_TIMEOUT",
        EMAIL_URL="smtp+tls://mailer:p%40ss@mail.example.com:587", DJANGO_DEFAULT_FROM_EMAIL="cms@example.com",
        EMAIL_TIMEOUT="5",
    )
    assert values == ("django.core.mail.backends.smtp.EmailBackend mail.example.com 587 mailer p@ss True False "
                      "cms@example.com 5")


@pytest.mark.parametrize(
    ("env", "named", "accepts"),
    [
        ({"EMAIL_URL": "http://user:hunter2-secret@mail.example.com"}, "EMAIL_URL", "smtp://"),
        ({"EMAIL_TIMEOUT": "never"}, "EMAIL_TIMEOUT='never'", "1 to 300"),
    ],
)
def test_email_settings__bad_value_stops_startup_with_one_line(env: dict, named: str, accepts: str) -> None:
    """Refuse a bad EMAIL_URL or EMAIL_TIMEOUT with one line naming it, and never echo the password."""
    result = check(**env)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert named in line and accepts in line
    assert "hunter2" not in line
