"""The enqueue API: @job, Queue.add(), the job handle, options, and the payload guard."""

from __future__ import annotations

import json
import math
import zlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
import redis
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings
from rq.serializers import JSONSerializer

from queues import (
    InvalidJobData,
    InvalidJobOptions,
    InvalidQueue,
    PayloadTooLarge,
    UnknownJob,
    get_queue,
    job,
)
from queues.job import RQJob
from queues.worker import SimpleWorker
from tests.testapp.jobs import add, fail_then_record, record


def run_burst(*queues: str) -> None:
    SimpleWorker(list(queues)).work(burst=True)


def test_add__returns_a_handle_and_the_worker_gets_data_as_kwargs(redis_client: redis.Redis) -> None:
    """Return a handle with id, name, data and state; pass data to the function as keyword arguments."""
    handle = get_queue("email").add(add, {"a": 2, "b": 40})
    assert handle.name == "tests.testapp.jobs.add"
    assert handle.data == {"a": 2, "b": 40}
    assert handle.queue_name == "email"
    assert handle.get_state() == "waiting"
    assert redis_client.lrange("rq:queue:email", 0, -1) == [handle.id.encode()]
    run_burst("email")
    assert handle.get_state() == "completed"
    assert handle.return_value() == 42


def test_add__by_registered_name(redis_client: redis.Redis) -> None:
    """Add a job by the name its decorator registered."""
    handle = get_queue("email").add("tests.record", {"key": "k", "value": "v"})
    assert handle.name == "tests.record"
    run_burst("email")
    assert redis_client.lrange("k", 0, -1) == [b"v"]


def test_add__job_is_stored_as_json(redis_client: redis.Redis) -> None:
    """Write the job's call as JSON, never pickle: compact JSON while that is shorter than RQ's zlib of it (a small
    job's hash then keeps Redis's compact encoding), else zlib-compressed JSON as RQ writes it; RQ reads both."""
    small = get_queue("email").add(record, {"key": "k", "value": "v"})
    large = get_queue("email").add(record, {"key": "k", "value": "é" * 500})

    raw = redis_client.hget(f"rq:job:{small.id}", "data")
    assert json.loads(raw) == ["tests.testapp.jobs.record", None, [], {"key": "k", "value": "v"}]
    assert redis_client.object("encoding", f"rq:job:{small.id}") == b"listpack"
    raw = redis_client.hget(f"rq:job:{large.id}", "data")
    assert json.loads(zlib.decompress(raw)) == ["tests.testapp.jobs.record", None, [], {"key": "k", "value": "é" * 500}]
    for handle, value in ((small, "v"), (large, "é" * 500)):
        assert RQJob.fetch(handle.id, connection=redis_client, serializer=JSONSerializer).kwargs["value"] == value


def test_add__get_job_finds_it_again() -> None:
    """Look a job up again by id, and get None for an id that does not exist."""
    queue = get_queue("email")
    handle = queue.add(add, {"a": 1, "b": 1})
    again = queue.get_job(handle.id)
    assert again == handle and again.data == {"a": 1, "b": 1}
    assert queue.get_job("no-such-job") is None


def test_add__unknown_queue_is_refused() -> None:
    """Refuse a queue name QUEUES does not define, naming the defined ones."""
    with pytest.raises(InvalidQueue, match=r"'emails' is not defined: add it to QUEUES .*email, notifications"):
        get_queue("emails")


def test_add__unknown_job_is_refused(redis_client: redis.Redis) -> None:
    """Refuse an unregistered name or function at enqueue, writing nothing."""
    with pytest.raises(UnknownJob, match="No job named 'tests.nope' is registered"):
        get_queue("email").add("tests.nope")

    def local() -> None: ...

    with pytest.raises(UnknownJob, match="decorate it with @job"):
        get_queue("email").add(local)
    assert redis_client.dbsize() == 0


def test_add__job_of_another_queue_is_refused(redis_client: redis.Redis) -> None:
    """Refuse adding a job to a queue other than its decorator's, saying which queue to use."""
    with pytest.raises(InvalidJobOptions, match=r"belongs to queue 'notifications'.*get_queue\('notifications'\)"):
        get_queue("email").add(fail_then_record, {"key": "k", "failures": 0})
    assert redis_client.dbsize() == 0


class Node:
    pass


def circular() -> dict:
    data: dict = {"a": {}}
    data["a"]["back"] = data
    return data


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"user": User(pk=7, username="u")}, InvalidJobData, r"data\['user'\] is a User model instance: pass its "
                                                               r"primary key instead"),
        ({"users": User.objects.all()}, InvalidJobData, r"is a QuerySet: pass a list of primary keys"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, InvalidJobData, r"data\['when'\] is a datetime: pass "
                                                                     r"value.isoformat\(\)"),
        ({"day": date(2026, 1, 1)}, InvalidJobData, r"is a date: pass value.isoformat\(\)"),
        ({"wait": timedelta(seconds=3)}, InvalidJobData, r"is a timedelta: pass value.total_seconds\(\)"),
        ({"body": "x" * (1024 * 1024)}, PayloadTooLarge, r"job data is 1,048,5\d\d bytes as JSON, over the 65,536-byte "
                                                         r"limit \(QUEUES_MAX_PAYLOAD_BYTES\)"),
        ({"price": Decimal("1.10")}, InvalidJobData, r"is a Decimal: pass str\(value\)"),
        ({"id": uuid4()}, InvalidJobData, r"is a UUID: pass str\(value\)"),
        ({"tags": {"a", "b"}}, InvalidJobData, r"is a set: pass a list"),
        ({"pair": (1, 2)}, InvalidJobData, r"is a tuple: pass a list"),
        ({"blob": b"\x00"}, InvalidJobData, r"is bytes"),
        ({"ratio": math.nan}, InvalidJobData, r"not a finite number"),
        ({"ratios": [1.0, -math.inf]}, InvalidJobData, r"data\['ratios'\]\[1\] is not a finite number"),
        ({"nested": [{"deep": [Node()]}]}, InvalidJobData, r"data\['nested'\]\[0\]\['deep'\]\[0\] is a "
                                                          r"tests.test_add.Node"),
        ({"map": {1: "one"}}, InvalidJobData, r"has the key 1: JSON object keys must be strings"),
        (circular(), InvalidJobData, r"circular reference"),
        ([1, 2], InvalidJobData, r"job data must be a dict of keyword arguments"),
    ],
)
def test_add__bad_data_is_refused_and_nothing_reaches_redis(redis_client: redis.Redis, data, error, message) -> None:
    """Refuse data JSON cannot carry, or too large, with a message that says what to pass; write nothing."""
    with pytest.raises(error, match=message):
        get_queue("email").add(record, data)
    assert redis_client.dbsize() == 0


def test_add__payload_limit_is_a_setting(redis_client: redis.Redis) -> None:
    """Accept data up to QUEUES_MAX_PAYLOAD_BYTES and refuse one byte more."""
    # {"key":"k","value":"<n x>"} is 22 bytes of JSON around the value.
    with override_settings(QUEUES_MAX_PAYLOAD_BYTES=122):
        get_queue("email").add(record, {"key": "k", "value": "x" * 100})
        with pytest.raises(PayloadTooLarge, match="123 bytes as JSON, over the 122-byte limit"):
            get_queue("email").add(record, {"key": "k", "value": "x" * 101})
    assert redis_client.llen("rq:queue:email") == 1


def nested(levels: int) -> dict:
    """``{"x": [[...]]}``: a dict and lists, ``levels`` containers deep in all."""
    value: list = []
    for _ in range(levels - 2):
        value = [value]
    return {"x": value}


@pytest.mark.parametrize("levels", [101, 1_000, 100_000])
def test_add__data_nested_too_deep_is_refused(redis_client: redis.Redis, levels: int) -> None:
    """Refuse data nested over 100 levels with InvalidJobData naming the limit (not a RecursionError); write
    nothing."""
    with pytest.raises(InvalidJobData, match=r"nests lists and dicts more than 100 levels deep at data\['x'\]\[0\]"):
        get_queue("email").add(record, nested(levels))
    deep_dict: dict = {}
    for _ in range(levels):
        deep_dict = {"k": deep_dict}
    with pytest.raises(InvalidJobData, match=r"more than 100 levels deep at data\['k'\]\['k'\]"):
        get_queue("email").add(record, deep_dict)
    assert redis_client.dbsize() == 0


def test_add__data_nested_100_levels_is_accepted() -> None:
    """Accept data exactly 100 levels deep, and hand it to the job as it was."""
    handle = get_queue("email").add(add, nested(100))
    assert get_queue("email").get_job(handle.id).data == nested(100)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**5000, r"data\['n'\] is an integer of 16,610 bits"),
        (-(10**5000), r"data\['n'\] is an integer of 16,610 bits"),
        (2**63, r"data\['n'\] is an integer of 64 bits"),
        (-(2**63) - 1, r"data\['n'\] is an integer of 64 bits"),
    ],
    ids=["5000-digits", "minus-5000-digits", "2**63", "-2**63-1"],
)
def test_add__integer_outside_64_bits_is_refused(redis_client: redis.Redis, value: int, message: str) -> None:
    """Refuse an int outside the signed 64-bit range (a 5,000-digit one too, not Python's digit-limit ValueError),
    saying to pass str(value); write nothing."""
    for data in ({"n": value}, {"l": [value]}):
        with pytest.raises(InvalidJobData, match=r"outside the signed 64-bit range.*pass str\(value\)"):
            get_queue("email").add(record, data)
    with pytest.raises(InvalidJobData, match=message):
        get_queue("email").add(record, {"n": value})
    assert redis_client.dbsize() == 0


def test_add__integers_within_64_bits_are_accepted() -> None:
    """Accept the ends of the signed 64-bit range (a BigAutoField's primary keys) and keep them exact."""
    data = {"low": -(2**63), "high": 2**63 - 1, "ids": [2**53 + 1, -(2**53) - 1], "flag": True}
    handle = get_queue("email").add(add, data)
    assert get_queue("email").get_job(handle.id).data == data


def rq_fields(redis_client: redis.Redis, job_id: str) -> dict[str, str]:
    raw = redis_client.hgetall(f"rq:job:{job_id}")
    return {k.decode(): v.decode() for k, v in raw.items() if k != b"data"}


def test_add__queue_defaults_apply(redis_client: redis.Redis) -> None:
    """Carry the queue's default options onto the job: attempts, exponential backoff, retention, timeout."""
    # email: attempts 3, exponential 1 s, remove_on_complete age 1 day, remove_on_fail count only, timeout 60
    fields = rq_fields(redis_client, get_queue("email").add(add, {"a": 1, "b": 2}).id)
    assert fields["retries_left"] == "2"
    assert json.loads(fields["retry_intervals"]) == [1, 2]
    assert fields["timeout"] == "60"
    assert fields["result_ttl"] == "86400"
    assert fields["keep_completed"] == "100"
    # A count with no age: kept (ten years), so that the registry stays in order of completion.
    assert fields["failure_ttl"] == str(10 * 365 * 24 * 60 * 60)
    assert fields["keep_failed"] == "500"


def test_add__per_call_options_win(redis_client: redis.Redis) -> None:
    """Let options given to add() override the queue's defaults."""
    handle = get_queue("email").add(add, {"a": 1, "b": 2}, attempts=4, backoff={"type": "exponential", "delay": 3},
                                    timeout=timedelta(minutes=2), remove_on_complete=True, remove_on_fail={"age": 60})
    fields = rq_fields(redis_client, handle.id)
    assert fields["retries_left"] == "3"
    assert json.loads(fields["retry_intervals"]) == [3, 6, 12]
    assert fields["timeout"] == "120"
    assert fields["result_ttl"] == "0"
    assert fields["failure_ttl"] == "60"


def test_add__attempts_one_means_no_retry(redis_client: redis.Redis) -> None:
    """Store no retry for attempts=1."""
    fields = rq_fields(redis_client, get_queue("email").add(add, {"a": 1, "b": 2}, attempts=1).id)
    assert "retries_left" not in fields


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"atempts": 2}, r"unknown job option 'atempts'. Did you mean 'attempts'\?"),
        ({"attempts": 0}, r"attempts is the total number of runs"),
        ({"backoff": {"type": "linear", "delay": 1}}, r"backoff type must be 'fixed' or 'exponential'"),
        ({"backoff": -1}, r"backoff must be 0 or more seconds"),
        ({"timeout": "soon"}, r"timeout must be a number of seconds or a timedelta"),
        ({"remove_on_complete": {"keep": 3}}, r"remove_on_complete takes \{'count': N, 'age': seconds\}"),
    ],
)
def test_add__bad_options_are_refused(redis_client: redis.Redis, options: dict, message: str) -> None:
    """Refuse an unknown option or a value out of range, naming it; write nothing."""
    with pytest.raises(InvalidJobOptions, match=message):
        get_queue("email").add(add, {"a": 1, "b": 2}, **options)
    assert redis_client.dbsize() == 0


def test_job__decorator_options_and_validation() -> None:
    """Validate decorator options at import time and refuse what a worker could not import."""
    with pytest.raises(InvalidJobOptions, match="unknown job option 'retries'"):
        job("email", retries=3)

    def nested() -> None: ...

    with pytest.raises(TypeError, match="takes a module-level function"):
        job("email")(nested)
    with pytest.raises(ValueError, match="'tests.record' is already registered for tests.testapp.jobs.record"):
        job("email", name="tests.record")(run_burst)


@pytest.mark.django_db(transaction=True)
def test_add__inside_a_transaction_waits_for_commit(redis_client: redis.Redis) -> None:
    """Return the id at once inside atomic(), write on commit, and write nothing on rollback."""
    with transaction.atomic():
        committed = get_queue("email").add(add, {"a": 1, "b": 1})
        assert committed.id
        assert redis_client.exists(f"rq:job:{committed.id}") == 0
    assert redis_client.exists(f"rq:job:{committed.id}") == 1
    assert committed.get_state() == "waiting"

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        rolled_back = get_queue("email").add(add, {"a": 2, "b": 2})
        raise Rollback
    assert redis_client.exists(f"rq:job:{rolled_back.id}") == 0
    assert redis_client.lrange("rq:queue:email", 0, -1) == [committed.id.encode()]
