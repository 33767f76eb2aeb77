"""Property-based tests (hypothesis) of the payload guard and the job-option parsers.

Each property states what must hold for every input hypothesis builds: plain JSON data round-trips through the
guard (and through Redis), anything JSON cannot carry is refused with ``InvalidJobData`` naming where, and every
option parser either returns ``JobOptions`` or raises ``InvalidJobOptions``, whatever it is given.
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from queues import InvalidJobData, InvalidJobOptions, PayloadTooLarge, get_queue
from queues.options import MAX_ATTEMPTS, MAX_PRIORITY, OPTION_NAMES, PER_JOB_ONLY, Backoff, JobOptions, Retention
from queues.payload import INT_MAX, INT_MIN, MAX_DEPTH, check_payload, encode_payload

NO_LIMIT = 10**9  # bytes: a size limit no generated value comes near
FAST = settings(max_examples=200, deadline=None)
REDIS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------------------------------------- payload strategies

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT_MIN, INT_MAX),
    st.sampled_from([INT_MIN, INT_MAX, 2**53 + 1, -0.0, 5e-324, sys.float_info.max]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_scalars, lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)
json_data = st.dictionaries(st.text(), json_values, max_size=6)  # job data: a dict of keyword arguments

lone_surrogates = st.characters(categories=["Cs"])
unjsonable_leaves = st.one_of(
    st.sets(st.integers(), max_size=3),
    st.frozensets(st.integers(), max_size=3),
    st.lists(st.integers(), max_size=3).map(tuple),
    st.binary(max_size=4),
    st.binary(max_size=4).map(bytearray),
    st.binary(max_size=4).map(memoryview),
    st.datetimes(),
    st.datetimes(timezones=st.timezones()),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(),
    st.uuids(),
    st.complex_numbers(),
    st.builds(object),
    st.builds(lambda: User(pk=7, username="someone")),
    st.dictionaries(st.text(max_size=3), json_scalars, max_size=2).map(MappingProxyType),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=INT_MAX + 1),
    st.integers(max_value=INT_MIN - 1),
    st.sampled_from([10**5000, -(10**5000)]),
    st.tuples(st.text(max_size=3), lone_surrogates, st.text(max_size=3)).map("".join),  # UTF-8 cannot carry it
)
bad_keys = st.one_of(
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.tuples(st.integers()),
    st.sampled_from([10**5000]),
    st.tuples(st.text(max_size=3), lone_surrogates).map("".join),
)
# A path from the job data's own dict down: a key (str) or an index (int) at each level; the first is a key.
steps = st.tuples(st.text(max_size=5), st.lists(st.text(max_size=5) | st.integers(0, 3), max_size=8)).map(
    lambda first_rest: [first_rest[0], *first_rest[1]]
)


def path_of(keys: list[str | int]) -> str:
    """The path the guard's messages use: ``data['a'][0]``."""
    return "data" + "".join(f"[{key!r}]" if isinstance(key, str) else f"[{key}]" for key in keys)


def nest(keys: list[str | int], leaf: Any, filler: Any = None) -> dict:
    """The job data holding ``leaf`` at ``keys``; a list index ``i`` is preceded by ``i`` fillers and followed by
    one."""
    value = leaf
    for key in reversed(keys[1:]):
        value = {key: value, f"{key}-sibling": filler} if isinstance(key, str) else [*[filler] * key, value, filler]
    return {keys[0]: value}


def depth_of(value: Any) -> int:
    """Levels of dicts and lists, the value itself counted."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 is not 1.0 nor True), -0.0 kept apart from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    return a == b


# ------------------------------------------------------------------------------------------------ payload guard


@FAST
@given(data=json_data)
def test_encode_payload__json_data_round_trips(data: dict) -> None:
    """Encode any JSON data within the limits as JSON that loads back to the same value, types and -0.0 kept."""
    assume(depth_of(data) <= MAX_DEPTH)  # st.recursive does not bound depth; 30 leaves at most keep it far below
    encoded = encode_payload(data, NO_LIMIT)
    assert same(json.loads(encoded), data)
    assert check_payload(data, NO_LIMIT) == len(encoded.encode())


@FAST
@given(data=json_data)
def test_encode_payload__size_limit_is_exact(data: dict) -> None:
    """Accept data of exactly the limit in UTF-8 bytes, and refuse it with PayloadTooLarge one byte under."""
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    assert check_payload(data, size) == size
    with pytest.raises(PayloadTooLarge, match=f"job data is {size:,} bytes as JSON, over the {size - 1:,}-byte"):
        encode_payload(data, size - 1)


@FAST
@given(keys=steps, leaf=unjsonable_leaves, filler=json_scalars)
def test_encode_payload__unjsonable_value_is_refused_naming_its_path(keys: list, leaf: Any, filler: Any) -> None:
    """Refuse a value JSON cannot carry, anywhere in the data, with InvalidJobData (no other type) naming its
    path."""
    with pytest.raises(InvalidJobData) as refused:
        encode_payload(nest(keys, leaf, filler), NO_LIMIT)
    assert type(refused.value) is InvalidJobData
    assert f"job data {path_of(keys)} " in str(refused.value)


@FAST
@given(keys=steps, key=bad_keys, filler=json_scalars)
def test_encode_payload__key_json_cannot_carry_is_refused_naming_its_dict(keys: list, key: Any, filler: Any) -> None:
    """Refuse a dict key that is not a str (or that UTF-8 cannot carry) with InvalidJobData naming the dict."""
    with pytest.raises(InvalidJobData) as refused:
        encode_payload(nest(keys, {"fine": filler, key: filler}, filler), NO_LIMIT)
    assert type(refused.value) is InvalidJobData
    assert f"job data {path_of(keys)} " in str(refused.value)


@FAST
@given(keys=steps, kind=st.sampled_from([list, dict]), to_root=st.booleans())
def test_encode_payload__circular_reference_is_refused(keys: list, kind: type, to_root: bool) -> None:
    """Refuse a list or dict that contains itself, or the data that holds it, with InvalidJobData."""
    loop: Any = kind()
    data = nest(keys, loop)
    target = data if to_root else loop
    if kind is list:
        loop.append(target)
    else:
        loop["again"] = target
    with pytest.raises(InvalidJobData, match="refers back to itself"):
        encode_payload(data, NO_LIMIT)


@FAST
@given(keys=st.lists(st.text(max_size=2) | st.integers(0, 1), min_size=MAX_DEPTH, max_size=MAX_DEPTH + 1).map(
    lambda ks: ["top", *ks[1:]]
), extra=st.integers(0, 3_000), leaf=st.sampled_from([[], {}]))
def test_encode_payload__depth_limit_is_exact(keys: list, extra: int, leaf: Any) -> None:
    """Accept data MAX_DEPTH containers deep; refuse any deeper (100,000 levels too, never a RecursionError) with
    InvalidJobData naming where."""
    for _ in range(extra):
        leaf = [leaf]
    data = nest(keys[: MAX_DEPTH - 1], leaf)  # MAX_DEPTH - 1 containers along the path, then the leaf's own
    if extra == 0:
        assert same(json.loads(encode_payload(data, NO_LIMIT)), data)
        return
    with pytest.raises(InvalidJobData) as refused:
        encode_payload(data, NO_LIMIT)
    assert type(refused.value) is InvalidJobData
    too_deep = path_of([*keys[: MAX_DEPTH - 1], 0])  # the container at level MAX_DEPTH + 1
    assert f"more than {MAX_DEPTH} levels deep at {too_deep[:80]}" in str(refused.value)


@FAST
@given(data=st.one_of(json_scalars, st.lists(json_scalars, max_size=3), unjsonable_leaves))
def test_encode_payload__data_that_is_not_a_dict_is_refused(data: Any) -> None:
    """Refuse job data that is not a dict (keyword arguments) with InvalidJobData."""
    with pytest.raises(InvalidJobData, match="job data must be a dict of keyword arguments"):
        encode_payload(data, NO_LIMIT)


# -------------------------------------------------------------------------------------------- option strategies

any_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**1100), 2**1100),  # past a float's range too
    st.floats(),
    st.text(max_size=10),
    st.timedeltas(),
    st.datetimes(),
    st.datetimes(timezones=st.timezones()),
    st.decimals(),
    st.fractions(),
)
backoff_types = st.one_of(
    st.sampled_from(["fixed", "exponential", "tests.testapp.backoff.linear_recorded",
                     "tests.testapp.backoff.not_a_strategy", "tests.testapp.backoff.missing", "no_such_module.f",
                     ".", ".x", "..x", "x.", "x..y"]),
    st.text(max_size=8),
)
option_keys = st.one_of(st.sampled_from(["type", "delay", "jitter", "count", "age"]), st.text(max_size=5),
                        st.integers(-5, 5))
any_value = st.one_of(
    any_scalar,
    st.lists(any_scalar, max_size=3),
    st.dictionaries(option_keys, any_scalar | backoff_types, max_size=4),
)


def seconds(*, above_zero: bool = False) -> st.SearchStrategy[tuple[Any, float]]:
    """(value, its seconds) for a number of seconds or a timedelta, 0 or more (or more than 0)."""
    low = 1 if above_zero else 0
    return st.one_of(
        st.integers(low, int(sys.float_info.max)).map(lambda n: (n, float(n))),
        st.floats(min_value=0, exclude_min=above_zero, allow_infinity=False).map(lambda x: (x, x)),
        st.timedeltas(min_value=timedelta(microseconds=low)).map(lambda d: (d, d.total_seconds())),
    )


jitters = st.integers(0, 1) | st.floats(0, 1)
backoff_dicts = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["fixed", "exponential", "tests.testapp.backoff.linear_recorded"]),
    "delay": seconds(),
    "jitter": jitters,
}).map(lambda spec: (
    {name: value[0] if name == "delay" else value for name, value in spec.items()},
    Backoff(spec.get("type", "fixed"), spec["delay"][1] if "delay" in spec else 0.0, float(spec.get("jitter", 0))),
))
retention_dicts = st.fixed_dictionaries({}, optional={
    "count": st.none() | st.integers(min_value=0),
    "age": st.none() | seconds(),
}).filter(bool).map(lambda spec: (
    {name: value[0] if name == "age" and value is not None else value for name, value in spec.items()},
    Retention(count=spec.get("count"), age=spec["age"][1] if spec.get("age") is not None else None),
))
retentions = st.one_of(
    st.just((True, Retention(count=0))),
    st.sampled_from([(False, Retention()), (None, Retention())]),
    st.integers(min_value=0).map(lambda n: (n, Retention(count=n))),
    retention_dicts,
)
aware_datetimes = st.datetimes(timezones=st.timezones() | st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
))
# Each option's documented domain, as (value given, the JobOptions attribute it must parse to).
valid_options = {
    "attempts": st.integers(min_value=1, max_value=MAX_ATTEMPTS).map(lambda n: (n, n)),
    "backoff": seconds().map(lambda pair: (pair[0], Backoff("fixed", pair[1]))) | backoff_dicts,
    "delay": seconds(),
    "job_id": st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True).map(lambda s: (s, s)) | st.just((None, None)),
    "priority": st.integers(0, MAX_PRIORITY).map(lambda n: (n, n)) | st.just((None, None)),
    "remove_on_complete": retentions,
    "remove_on_fail": retentions,
    "run_at": aware_datetimes.map(lambda at: (at, at.timestamp())),
    "timeout": seconds(above_zero=True),
}
# Values outside each option's domain (bools are not numbers here; datetimes are not seconds).
invalid_options = {
    "attempts": st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_ATTEMPTS + 1), st.booleans(), st.floats(),
                          st.text(max_size=3)),
    "backoff": st.one_of(st.integers(max_value=-1), st.floats(max_value=-1e-9), st.booleans(), st.text(max_size=3),
                         st.fixed_dictionaries({"jitter": st.floats().filter(lambda x: not 0 <= x <= 1)}),
                         st.fixed_dictionaries({"type": st.sampled_from(["linear", "Fixed", ""])})),
    "delay": st.one_of(st.integers(max_value=-1), st.floats().filter(lambda x: not x >= 0), st.booleans(),
                       st.datetimes(), st.sampled_from([2**1024, 10**400])),
    "job_id": st.one_of(st.text().filter(lambda s: not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", s)),
                        st.tuples(st.from_regex(r"[A-Za-z0-9_-]{1,127}", fullmatch=True),
                                  st.sampled_from(["\n", " ", ".", ":", "é"])).map("".join)),
    "priority": st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_PRIORITY + 1), st.booleans(),
                          st.floats()),
    "remove_on_complete": st.one_of(st.integers(max_value=-1), st.just({}), st.floats(), st.text(max_size=3)),
    "remove_on_fail": st.fixed_dictionaries({"count": st.integers(max_value=-1) | st.booleans()}),
    "run_at": st.one_of(st.datetimes(), st.floats(), st.integers(), st.timedeltas()),
    "timeout": st.one_of(st.integers(max_value=0), st.floats().filter(lambda x: not x > 0),
                         st.timedeltas(max_value=timedelta(0)), st.sampled_from([2**1024, -(2**1024)])),
}


def typos(name: str) -> st.SearchStrategy[str]:
    """``name`` with one character deleted, replaced or inserted."""
    letters = st.sampled_from("abcdefghijklmnopqrstuvwxyz_")
    at = st.integers(0, len(name) - 1)
    return st.one_of(
        at.map(lambda i: name[:i] + name[i + 1:]),
        st.tuples(at, letters).map(lambda p: name[: p[0]] + p[1] + name[p[0] + 1:]),
        st.tuples(at, letters).map(lambda p: name[: p[0]] + p[1] + name[p[0]:]),
    ).filter(lambda typo: typo != name)


# ------------------------------------------------------------------------------------------------ option parsers


@settings(max_examples=600, deadline=None)
@given(name=st.sampled_from(OPTION_NAMES), value=any_value, shared=st.booleans())
def test_job_options_parse__any_value_parses_or_raises_invalid_job_options(name: str, value: Any,
                                                                            shared: bool) -> None:
    """Return JobOptions or raise InvalidJobOptions for any value of any option: never another exception."""
    try:
        parsed = JobOptions.parse({name: value}, "where", shared=shared)
    except InvalidJobOptions as e:
        assert str(e).startswith("where: ")
    else:
        assert isinstance(parsed, JobOptions)
        assert not (shared and name in PER_JOB_ONLY)


@FAST
@given(kind=backoff_types, delay=any_scalar)
def test_job_options_parse__any_backoff_type_parses_or_raises_invalid_job_options(kind: str, delay: Any) -> None:
    """Return JobOptions or raise InvalidJobOptions for any backoff type string (a dotted path is imported)."""
    try:
        parsed = JobOptions.parse({"backoff": {"type": kind, "delay": delay}}, "where")
    except InvalidJobOptions as e:
        assert str(e).startswith("where: backoff ")
    else:
        assert parsed.backoff.type == kind


@FAST
@given(given_options=st.fixed_dictionaries({}, optional=valid_options))
def test_job_options_parse__valid_options_parse_to_their_values(given_options: dict[str, tuple[Any, Any]]) -> None:
    """Parse any options from each one's documented domain, together, to the values they mean (seconds for a
    timedelta, a POSIX timestamp for run_at); leave the others at their defaults."""
    parsed = JobOptions.parse({name: value for name, (value, _) in given_options.items()}, "where")
    defaults = JobOptions()
    for name in OPTION_NAMES:
        expected = given_options[name][1] if name in given_options else getattr(defaults, name)
        assert getattr(parsed, name) == expected, name


@FAST
@given(data=st.data(), name=st.sampled_from(OPTION_NAMES))
def test_job_options_parse__value_outside_the_domain_is_refused(data: st.DataObject, name: str) -> None:
    """Refuse a value outside an option's domain with InvalidJobOptions naming the option."""
    value = data.draw(invalid_options[name])
    with pytest.raises(InvalidJobOptions, match=f"where: {name.split('_on_')[0]}"):
        JobOptions.parse({name: value}, "where")


@FAST
@given(name=st.text(max_size=20).filter(lambda name: name not in OPTION_NAMES), value=any_scalar)
def test_job_options_parse__unknown_name_is_refused(name: str, value: Any) -> None:
    """Refuse an unknown option name with InvalidJobOptions that suggests a close name or lists the known ones."""
    with pytest.raises(InvalidJobOptions) as refused:
        JobOptions.parse({name: value}, "where")
    message = str(refused.value)
    assert message.startswith(f"where: unknown job option {name!r}.")
    suggested = re.search(r"Did you mean '(\w+)'\?$", message)
    known = f"Known options: {', '.join(OPTION_NAMES)}."
    assert (suggested and suggested[1] in OPTION_NAMES) or message.endswith(known)


@FAST
@given(data=st.data(), name=st.sampled_from(OPTION_NAMES))
def test_job_options_parse__misspelt_name_suggests_the_option(data: st.DataObject, name: str) -> None:
    """Refuse a name one letter away from an option, alone or among valid ones, suggesting that option."""
    typo = data.draw(typos(name))
    others = data.draw(st.fixed_dictionaries({}, optional=valid_options))
    options = {other: value for other, (value, _) in others.items()}
    options[typo] = 1
    with pytest.raises(InvalidJobOptions, match=re.escape(f"unknown job option {typo!r}. Did you mean {name!r}?")):
        JobOptions.parse(options, "where")


# ------------------------------------------------------------------------------------- through Redis, end to end


@REDIS
@given(value=st.text(max_size=300),
       extra=st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("key", "value")), json_values, max_size=3))
def test_add__data_round_trips_through_redis(value: str, extra: dict) -> None:
    """Store any JSON data added with Queue.add and read the same data (types, order and -0.0 kept) back from
    Redis."""
    data = {"key": "k", "value": value, **extra}
    queue = get_queue("email")
    handle = queue.add("tests.record", data)
    stored = queue.get_job(handle.id)
    assert stored is not None
    assert same(stored.data, data)
    assert same(handle.data, data)


@REDIS
@given(keys=steps, leaf=unjsonable_leaves)
def test_add__unjsonable_data_is_refused_before_redis(redis_client: Any, keys: list, leaf: Any) -> None:
    """Refuse data JSON cannot carry at Queue.add with InvalidJobData, writing nothing to Redis."""
    with pytest.raises(InvalidJobData):
        get_queue("email").add("tests.record", nest(keys, leaf))
    assert redis_client.dbsize() == 0



def test_an_option_value_python_cannot_even_show_is_refused_as_invalid() -> None:
    """An int past Python's 4,300-digit limit for an option: InvalidJobOptions, not the ValueError of its repr."""
    for name in ("priority", "delay", "timeout"):
        with pytest.raises(InvalidJobOptions, match=f"{name} has a value too large to read"):
            JobOptions.parse({name: 10**5000}, "add('x')")
