"""Settings from environment variables: good values are read, bad ones stop start-up with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BASE_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "true",
}


def check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**BASE_ENV, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def settings_value(expression: str, **env: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**BASE_ENV, **env},
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "named", "accepts"),
    [
        ({"REDIS_PORT": "abc"}, "REDIS_PORT='abc'", "1 to 65535"),
        ({"REDIS_PORT": "70000"}, "REDIS_PORT='70000'", "1 to 65535"),
        ({"REDIS_TLS": "maybe"}, "REDIS_TLS='maybe'", "true or false"),
        ({"REDIS_DB": "x"}, "REDIS_DB='x'", "0 to 15"),
        ({"REDIS_URL": "http://example.com:6379"}, "REDIS_URL", "redis://, rediss:// or unix://"),
        ({"REDIS_URL": "redis://127.0.0.1:notaport/0"}, "REDIS_URL", "redis://"),
        ({"DJANGO_DEBUG": "perhaps"}, "DJANGO_DEBUG='perhaps'", "true or false"),
        ({"DJANGO_DEBUG": "false"}, "DJANGO_SECRET_KEY", "DJANGO_DEBUG=true"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL", "postgres://"),
        ({"REDIS_TLS_CA_CERTS": "/nonexistent.pem", "REDIS_TLS": "true"}, "REDIS_TLS_CA_CERTS", "PEM"),
        ({"RQ_API_TOKEN": "a-short-token"}, "RQ_API_TOKEN", "at least 32 characters"),
        ({"REDIS_SENTINELS": "10.0.0.5"}, "REDIS_SENTINELS", "host:port"),
        ({"REDIS_SENTINELS": "10.0.0.5:26379", "REDIS_URL": "redis://x:6379/0"}, "REDIS_SENTINELS and REDIS_URL",
         "unset REDIS_URL"),
        ({"RQ_API_TOKEN": "x" * 20 + " " + "y" * 20}, "RQ_API_TOKEN", "token_hex"),
    ],
)
def test_settings_env__bad_value_stops_startup_with_one_line(env: dict, named: str, accepts: str) -> None:
    """Refuse a bad environment variable at start-up with one line naming it and what it accepts."""
    result = check(**env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: ")
    assert named in lines[0]
    assert accepts in lines[0]


def test_settings_env__password_is_not_echoed_in_errors() -> None:
    """Keep the password out of the error about a bad REDIS_URL."""
    result = check(REDIS_URL="http://user:hunter2-secret@example.com:6379")
    assert result.returncode == 1
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_settings_env__rq_api_token_is_not_echoed_in_errors() -> None:
    """Keep a refused RQ_API_TOKEN out of the error about it."""
    result = check(RQ_API_TOKEN="hunter2-token")
    assert result.returncode == 1
    assert "hunter2-token" not in result.stderr + result.stdout


def test_settings_env__defaults() -> None:
    """Read localhost:6379 without TLS and a SQLite file in the project when nothing is set."""
    redis = settings_value("settings.QUEUES_REDIS")
    assert "'HOST': 'localhost'" in redis and "'PORT': 6379" in redis and "'SSL': False" in redis
    assert settings_value("settings.DATABASES['default']['ENGINE']") == "django.db.backends.sqlite3"
    assert settings_value("settings.DATABASES['default']['NAME']") == str(ROOT / "db.sqlite3")


def test_settings_env__redis_variables_are_read() -> None:
    """Read host, port, db, password and TLS from their variables, and let REDIS_URL win."""
    redis = settings_value(
        "sorted(settings.QUEUES_REDIS.items())",
        REDIS_HOST="cache.internal", REDIS_PORT="6380", REDIS_DB="2", REDIS_PASSWORD="pw", REDIS_TLS="yes",
    )
    assert redis == ("[('DB', 2), ('HOST', 'cache.internal'), ('PASSWORD', 'pw'), ('PORT', 6380), ('SSL', True), "
                     "('USERNAME', None)]")
    url = settings_value("settings.QUEUES_REDIS", REDIS_URL="rediss://:pw@h:1/3", REDIS_HOST="ignored")
    assert url == "{'URL': 'rediss://:pw@h:1/3'}"


def test_settings_env__rq_api_token_is_read() -> None:
    """Set RQ_API_TOKEN (django-rq's and /queues/metrics' bearer token) from its variable; leave it unset if empty."""
    token = "0123456789abcdef" * 4
    assert settings_value("settings.RQ_API_TOKEN", RQ_API_TOKEN=f" {token} ") == token
    assert settings_value("hasattr(settings, 'RQ_API_TOKEN')") == "False"
    assert settings_value("hasattr(settings, 'RQ_API_TOKEN')", RQ_API_TOKEN=" ") == "False"


def test_settings_env__database_url_is_read() -> None:
    """Use the database that DATABASE_URL names."""
    engine = settings_value("settings.DATABASES['default']['ENGINE']",
                            DATABASE_URL="postgres://postgres@127.0.0.1:5432/test")
    assert engine == "django.db.backends.postgresql"


def test_settings_env__dot_env_read_only_when_asked(tmp_path) -> None:
    """Read .env only when DJANGO_READ_DOT_ENV_FILE is set."""
    env_file = ROOT / ".env"
    if env_file.exists():
        pytest.skip("a developer's .env exists in the project; not overwriting it")
    env_file.write_text("REDIS_HOST=from-dot-env\n")
    try:
        assert settings_value("settings.QUEUES_REDIS['HOST']") == "localhost"
        assert settings_value("settings.QUEUES_REDIS['HOST']", DJANGO_READ_DOT_ENV_FILE="true") == "from-dot-env"
    finally:
        env_file.unlink()


def test_settings_env__check_deploy_is_clean_with_production_settings() -> None:
    """``manage.py check --deploy`` finds nothing with the settings a production deploy sets (HTTPS behind a proxy,
    HSTS, a real secret key, its host names)."""
    production = {
        "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-" + "z" * 30,
        "DJANGO_ALLOWED_HOSTS": "cms.example.com", "DJANGO_HTTPS": "true", "DJANGO_HSTS_SECONDS": "31536000",
        "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "true", "DJANGO_HSTS_PRELOAD": "true",
    }
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env={**BASE_ENV, **production}, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    assert settings_value("settings.SESSION_COOKIE_SECURE, settings.SECURE_PROXY_SSL_HEADER", **production) == \
        "True ('HTTP_X_FORWARDED_PROTO', 'https')"
    assert settings_value("settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS") == "False 0"  # plain dev


def test_settings_env__sentinels_are_read() -> None:
    """REDIS_SENTINELS and REDIS_SENTINEL_MASTER ask Sentinel for the primary (and django-rq's pages too)."""
    env = {"REDIS_SENTINELS": "10.0.0.5:26379, [::1]:26380", "REDIS_SENTINEL_MASTER": "cms", "REDIS_DB": "2"}
    assert settings_value("settings.QUEUES_REDIS['SENTINELS'], settings.QUEUES_REDIS['SENTINEL_MASTER']", **env) == \
        "[('10.0.0.5', 26379), ('::1', 26380)] cms"
    assert settings_value("settings.RQ_QUEUES['email']['MASTER_NAME'], settings.RQ_QUEUES['email']['DB']", **env) == \
        "cms 2"
    assert check(**env).returncode == 0
