"""System checks: every misconfiguration of the queues settings is an error with an id and a hint."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.checks import Error
from django.test import override_settings

from queues import InvalidQueue, get_queue
from queues.checks import check_django_rq, check_settings
from tests.conftest import run_manage


def errors(**overrides) -> list[Error]:
    with override_settings(**overrides):
        return [*check_settings(), *check_django_rq()]


def ids(**overrides) -> list[str]:
    return [e.id for e in errors(**overrides)]


def test_checks__project_settings_pass() -> None:
    """Find no problem in the project's own settings."""
    assert errors() == []
    assert [m for m in checks.run_checks() if m.id and m.id.startswith("queues.")] == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"QUEUES": {}}, "queues.E001"),
        ({"QUEUES": "email"}, "queues.E001"),
        ({"QUEUES": {"bad:name": {}}}, "queues.E002"),
        ({"QUEUES": {"email": [], "notifications": {}}}, "queues.E003"),
        ({"QUEUES": {"email": {"default_job_option": {}}, "notifications": {}}}, "queues.E003"),
        ({"QUEUES": {"email": {"default_job_options": {"attempts": 0}}, "notifications": {}}}, "queues.E004"),
        ({"QUEUES": {"email": {"default_job_options": {"atempts": 3}}, "notifications": {}}}, "queues.E004"),
        ({"QUEUES": {"email": {"default_job_options": {"backoff": {"type": "linear"}}}, "notifications": {}}},
         "queues.E004"),
        ({"QUEUES": {"email": {"default_job_options": {"remove_on_complete": -1}}, "notifications": {}}},
         "queues.E004"),
        ({"QUEUES": {"email": {"default_job_options": {"timeout": 0}}, "notifications": {}}}, "queues.E004"),
        ({"QUEUES_REDIS": {"URL": "http://x"}}, "queues.E005"),
        ({"QUEUES_REDIS": {"HOST": "x", "PORT": "6379"}}, "queues.E005"),
        ({"QUEUES_REDIS": {"HOST": "x", "PASWORD": "p"}}, "queues.E005"),
        ({"QUEUES_MAX_PAYLOAD_BYTES": 0}, "queues.E006"),
        ({"QUEUES_EVENTS_MAX_LENGTH": -1}, "queues.E013"),
        ({"QUEUES_EVENTS_MAX_LENGTH": "10000"}, "queues.E013"),
        ({"QUEUES_METRICS_MINUTES": 1.5}, "queues.E013"),
        ({"QUEUES_DASHBOARD_REFRESH": 0}, "queues.E013"),
        ({"RQ_QUEUES": {}}, "queues.E007"),
        ({"RQ": {}}, "queues.E009"),
        ({"RQ": {"WORKER_CLASS": "rq.worker.SimpleWorker"}}, "queues.E009"),
    ],
)
def test_checks__misconfiguration_is_an_error(overrides: dict, expected: str) -> None:
    """Report each misconfiguration as an error with its id and a hint that says what to do."""
    found = errors(**overrides)
    assert expected in [e.id for e in found]
    error = next(e for e in found if e.id == expected)
    assert isinstance(error, Error) and error.hint


def test_checks__typo_gets_a_suggestion() -> None:
    """Suggest the closest option name for a typo."""
    found = errors(QUEUES={"email": {"default_job_options": {"atempts": 3}}, "notifications": {}})
    assert "Did you mean 'attempts'?" in found[0].msg


def test_checks__pickle_serializer_in_rq_queues() -> None:
    """Refuse an RQ_QUEUES that makes django-rq pickle a queue's jobs."""
    rq_queues = {name: {"URL": "redis://x", "SERIALIZER": "rq.serializers.DefaultSerializer"}
                 for name in ["email", "notifications", "imports", "exports", "media", "webhooks", "cleanup"]}
    assert "queues.E008" in ids(RQ_QUEUES=rq_queues)


def test_checks__job_on_undefined_queue() -> None:
    """Report a @job decorator that names a queue QUEUES does not define."""
    with override_settings(QUEUES={"email": {}}):
        found = check_settings()
    assert {e.id for e in found} == {"queues.E010"}
    assert any("'notifications'" in error.msg for error in found)


def test_checks__broken_settings_refuse_get_queue() -> None:
    """Refuse to hand out queues while QUEUES has errors, pointing at manage.py check."""
    with override_settings(QUEUES={"email": {"default_job_options": {"attempts": "three"}}}):
        with pytest.raises(InvalidQueue, match=r"queues\.E004.*manage\.py check"):
            get_queue("email")


def test_checks__manage_py_check_shows_the_error(tmp_path) -> None:
    """Make `manage.py check` fail and print the id and hint for a bad QUEUES."""
    settings_file = tmp_path / "bad_queues_settings.py"
    settings_file.write_text(
        "from tests.settings import *  # noqa\n"
        "QUEUES = {**QUEUES, 'email': {'default_job_options': {'backoff': {'type': 'linear', 'delay': 1}}}}\n"
    )
    import os

    from tests.conftest import manage_env

    env = manage_env(DJANGO_SETTINGS_MODULE="bad_queues_settings",
                     PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = run_manage("check", env=env)
    assert result.returncode == 1
    assert "queues.E004" in result.stderr
    assert "backoff type must be 'fixed' or 'exponential'" in result.stderr
    assert "HINT:" in result.stderr
