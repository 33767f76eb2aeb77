"""django-rq's own API on these queues: ``django_rq.enqueue``, ``django_rq.get_queue(...).enqueue`` and
``@django_rq.job``'s ``.delay`` keep django-rq's documented commit mode and result TTL, and this app's worker runs
the jobs they add (registered ``@job`` functions only)."""

from __future__ import annotations

import django_rq
import pytest
import redis
from django.db import transaction
from django.test import override_settings

from queues import get_queue
from queues.rqqueue import RQQueue
from tests.helpers import wait_for
from tests.testapp.jobs import add, multiply, record

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def delayed(redis_client: redis.Redis):
    """``multiply`` with django-rq's decorator applied now, bound to the tests' Redis (``.delay``, ``.enqueue``)."""
    return django_rq.job("email")(multiply)


def waiting(name: str = "email") -> int:
    return get_queue(name).get_job_counts()["waiting"]


def test_commit_mode__on_db_commit_is_the_default(delayed) -> None:
    """Inside a transaction django-rq's calls enqueue at commit; a rollback enqueues nothing."""
    queue = django_rq.get_queue("email")
    assert isinstance(queue, RQQueue)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert queue.enqueue(add, a=1, b=2) is None  # django-rq returns no job when it defers
        delayed.delay(a=2, b=3)
        django_rq.enqueue(add, a=3, b=4)
        raise RuntimeError("roll back")
    assert waiting() == 0 and waiting("default") == 0
    with transaction.atomic():
        queue.enqueue(add, a=1, b=2)
        delayed.delay(a=2, b=3)
        assert waiting() == 0
    assert waiting() == 2
    assert queue.enqueue(add, a=5, b=6) is not None and waiting() == 3  # outside a transaction: at once


def test_commit_mode__auto_writes_at_once(redis_client: redis.Redis) -> None:
    """``commit_mode="auto"`` (or ``RQ = {"COMMIT_MODE": "auto"}``) writes at once, even in a transaction that
    rolls back, as django-rq documents."""
    with pytest.raises(RuntimeError), transaction.atomic():
        django_rq.get_queue("email", commit_mode="auto").enqueue(add, a=1, b=2)
        with override_settings(RQ={"COMMIT_MODE": "auto"}):
            django_rq.get_queue("email").enqueue(add, a=1, b=2)
        raise RuntimeError("roll back")
    assert waiting() == 2


def test_result_ttl__the_queues_age_limit(delayed) -> None:
    """django-rq's ``DEFAULT_RESULT_TTL`` of a queue (``RQQueues`` sets it to the queue's age limit for completed
    jobs) reaches the jobs of ``enqueue_call`` and of ``@django_rq.job``, as django-rq gives it. (Its
    ``queue.enqueue`` passes ``result_ttl=None`` on, which django-rq keeps: RQ's 500 s.)"""
    age = get_queue("email").definition.default_job_options.remove_on_complete.ttl()
    assert age == 86400
    assert django_rq.get_queue("email").enqueue_call(add, kwargs={"a": 1, "b": 2}).result_ttl == age
    assert delayed.delay(a=1, b=2).result_ttl == age


def test_worker__runs_jobs_added_through_django_rq(workers, delayed, redis_client: redis.Redis) -> None:
    """This app's worker runs what django-rq's API added, when it names a registered @job function; any other
    function is refused, not called."""
    summed = django_rq.get_queue("email").enqueue(add, a=2, b=3)
    product = delayed.delay(a=4, b=5)
    stranger = django_rq.get_queue("email").enqueue(print, "never")
    recorded = django_rq.get_queue("email").enqueue(record, "tests:rq-api", "ran")
    worker = workers.start("rqworker", "email")
    for job in (summed, product, recorded, stranger):
        wait_for(lambda job=job: job.get_status(refresh=True) in ("finished", "failed"), 30, f"job {job.id}", worker)
    assert summed.return_value(refresh=True) == 5 and product.return_value(refresh=True) == 20
    assert redis_client.lrange("tests:rq-api", 0, -1) == [b"ran"]
    assert stranger.get_status(refresh=True) == "failed"
    assert "not a registered @job function" in stranger.latest_result().exc_string
