"""``add()`` inside ``transaction.atomic()`` when Redis is down at commit: the job is spooled to the database and a
worker adds it once Redis is back; never lost, never twice (issue 13, item 5)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import transaction
from django.test import override_settings

from config.redis_server import RedisServer
from queues import get_queue
from queues.connection import reset_connections
from queues.models import SpooledJob
from queues.spool import flush
from tests.conftest import manage_env
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone (it stops it), and the settings pointing at it."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        with override_settings(QUEUES_REDIS={"URL": server.url, "TIMEOUT": 1}):
            reset_connections()
            yield server
    finally:
        reset_connections()
        server.stop()


def test_redis_down_at_commit__the_job_is_spooled_and_a_worker_adds_it_when_redis_is_back(
        own_server: RedisServer, workers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="queues")
    with transaction.atomic():
        handle = get_queue("email").add("tests.record", {"key": "ran", "value": "once"})
        own_server.stop()  # Redis goes away before the commit
    # the commit did not raise into the caller, and said what happened
    assert "spooled to the database" in caplog.text and handle.id in caplog.text
    [row] = SpooledJob.objects.all()
    assert (row.queue, row.job_id, row.name) == ("email", handle.id, "tests.record")

    own_server.start()
    client = redis.Redis.from_url(own_server.url)
    worker = workers.start("rqworker", "email", env=manage_env(REDIS_URL=own_server.url))
    wait_for(lambda: client.lrange("ran", 0, -1) == [b"once"], 30, "the spooled job to run", worker)
    wait_for(lambda: not SpooledJob.objects.exists(), 10, "the spool to empty", worker)
    # the job's function has run; its outcome is written a moment later
    wait_for(lambda: get_queue("email").get_job(handle.id).get_state() == "completed", 10, "the job to complete",
             worker)
    assert client.lrange("ran", 0, -1) == [b"once"]


def test_flush__a_job_added_already_is_not_added_twice(own_server: RedisServer) -> None:
    """A process that died after adding a spooled job and before deleting its row: the next flush finds the job
    (same id) and adds nothing."""
    with transaction.atomic():
        handle = get_queue("email").add("tests.record", {"key": "ran", "value": "once"})
        own_server.stop()
    own_server.start()
    row = SpooledJob.objects.get()
    get_queue("email").add("tests.record", {"key": "ran", "value": "once"}, job_id=handle.id)  # it got there first
    assert flush() == 0
    assert not SpooledJob.objects.filter(pk=row.pk).exists()
    assert get_queue("email").get_job_counts()["waiting"] == 1


def test_flush__redis_still_down_keeps_the_rows(own_server: RedisServer) -> None:
    with transaction.atomic():
        get_queue("email").add("tests.record", {"key": "ran", "value": "once"})
        get_queue("email").add("tests.record", {"key": "ran", "value": "twice"}, delay=30)
        own_server.stop()
    with pytest.raises(redis.ConnectionError):
        flush()
    assert SpooledJob.objects.count() == 2
    own_server.start()
    assert flush() == 2
    counts = get_queue("email").get_job_counts()
    assert (counts["waiting"], counts["delayed"]) == (1, 1)  # the delayed job keeps its due time
    assert not SpooledJob.objects.exists()


def test_a_rollback_spools_nothing(own_server: RedisServer) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        get_queue("email").add("tests.record", {"key": "ran", "value": "once"})
        own_server.stop()
        raise RuntimeError("rolled back")
    assert not SpooledJob.objects.exists()


def test_redis_full_at_commit__the_job_is_spooled_not_lost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A Redis that refuses writes at the commit (full, under ``noeviction``) is a Redis that cannot take the job
    now: it is spooled like one that is down, and the commit does not raise into the caller."""
    server = RedisServer(tmp_path / "full").start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("ballast", b"x" * 2_000_000)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1mb")  # used memory is past it now: every write is refused
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("one-more", "x")
        with override_settings(QUEUES_REDIS={"URL": server.url, "TIMEOUT": 1}):
            reset_connections()
            caplog.set_level(logging.ERROR, logger="queues")
            with transaction.atomic():
                handle = get_queue("email").add("tests.record", {"key": "ran", "value": "once"})
            [row] = SpooledJob.objects.all()
            assert row.job_id == handle.id and "maxmemory" in row.error
            assert "spooled to the database" in caplog.text
            client.config_set("maxmemory", "0")  # room again (no limit): the next flush adds it
            assert flush() == 1 and not SpooledJob.objects.exists()
            assert get_queue("email").get_job(handle.id).get_state() == "waiting"
    finally:
        reset_connections()
        server.stop()
