"""Job schedulers: cron and interval jobs with BullMQ's meaning (``Queue.upsert_job_scheduler``).

A scheduler lives in Redis: a hash ``rq:scheduler:<queue>:<id>`` with its rule, job, data and options, listed in the
queue's sorted set ``rq:schedulers:<queue>`` by its next tick. Its next run is an ordinary delayed job whose id names
the scheduler and the tick (``repeat-<id>-<tick in ms>``), so no scheduler process and no leader lock are needed:

- the take script promotes the run at its tick, like any delayed job (never before);
- the worker that takes it (any worker, on any host) adds the run after it, in one script that first checks that the
  scheduler's ``pending`` run is the one it took. A second worker that somehow took the same run, or an upsert that
  replaced the scheduler meanwhile, finds ``pending`` moved on and adds nothing: one run per tick;
- the next tick is the first one after *now* (or after the tick just taken, when it is later), so a scheduler whose
  workers were away runs once when one comes back, not once per missed tick, and then keeps its rhythm;
- should a run end without the step above (a worker killed between the take and that step, then the run failing on
  too many stalls; a run removed by an operator), every worker's keeper notices it within a stall interval and
  schedules the next tick from now (:func:`repair`).

Cron patterns are evaluated by ``cronsim`` (Debian cron's rules, DST included: a local time that does not exist runs
once at the next valid time, one that happens twice runs once) in the scheduler's ``tz`` (default ``TIME_ZONE``).
``every`` ticks are the multiples of ``every`` (as BullMQ: ``every=2`` runs on even seconds), or ``start_date + k *
every`` with a ``start_date``; the first is the first tick after the upsert (or ``start_date`` itself), and
``immediately`` adds one run at once before the rhythm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgpack
import redis
from cronsim import CronSim, CronSimError
from django.conf import settings

from .conf import get_config
from .exceptions import InvalidJobOptions, InvalidScheduler, QueuesError
from .options import OPTION_NAMES
from .payload import encode_payload
from .registry import get_job_definition
from .scripts import JOB_PREFIX, QUEUES_SET, script

if TYPE_CHECKING:
    from .queue import NewJob, Queue

logger = logging.getLogger("queues.schedulers")

# A run's job id ("repeat-<id>-manual<microseconds>" at the longest) must stay within RQ's id rules (128 characters).
SCHEDULER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,90}$")
RUN_PREFIX = "repeat-"
SETTING = "QUEUES_JOB_SCHEDULERS"
SETTING_KEYS = ("queue", "job", "data", "every", "pattern", "tz", "start_date", "end_date", "limit", "immediately")
REFUSED_OPTIONS = ("job_id", "delay", "run_at")  # a run's id and due time are the scheduler's to decide


def schedulers_key(queue: str) -> str:
    return f"rq:schedulers:{queue}"


def scheduler_key(queue: str, scheduler_id: str) -> str:
    return f"rq:scheduler:{queue}:{scheduler_id}"


def run_id(scheduler_id: str, tick: float) -> str:
    """The job id of the run at ``tick``: the same on every worker, so adding it twice adds it once."""
    return f"{RUN_PREFIX}{scheduler_id}-{round(tick * 1000)}"


@dataclass(frozen=True)
class Rule:
    """When a scheduler runs: ``every`` seconds or a cron ``pattern`` in ``tz``, between ``start`` and ``end``."""

    every: float | None = None
    pattern: str | None = None
    tz: str = "UTC"
    start: float | None = None  # POSIX seconds
    end: float | None = None
    limit: int | None = None
    immediately: bool = False

    def first(self, now: float, anchor: float) -> float | None:
        """The first tick of a scheduler upserted at ``now`` (``anchor``: where ``every`` counts from)."""
        if self.immediately:
            return self._within(max(now, self.start if self.start is not None else now))
        return self.after(now, anchor)

    def after(self, moment: float, anchor: float) -> float | None:
        """The first tick strictly after ``moment`` (and not before ``start``), or None past ``end``."""
        if self.start is not None and moment < self.start:
            moment = self.start - 0.001
        if self.every is not None:
            steps = math.floor((moment - anchor) / self.every) + 1
            tick = anchor + max(steps, 0 if self.start is not None else 1) * self.every
            return self._within(round(tick, 3))
        assert self.pattern is not None
        zone = ZoneInfo(self.tz)
        local = datetime.fromtimestamp(moment, zone)
        # cronsim drops the fraction and then finds the next match strictly after the whole second
        found = next(CronSim(self.pattern, local), None)
        return self._within(found.timestamp()) if found is not None else None

    def _within(self, tick: float) -> float | None:
        return tick if self.end is None or tick <= self.end else None

    def describe(self) -> str:
        if self.every is not None:
            return f"every {self.every:g} s"
        return f"cron {self.pattern!r} ({self.tz})"


@dataclass(frozen=True)
class Definition:
    """A scheduler as given: checked, normalised, and ready to be written or compared (``digest``)."""

    id: str
    queue: str
    job: str
    data: dict[str, Any]
    options: dict[str, Any]
    rule: Rule
    origin: str = "api"
    digest: str = field(default="", compare=False)

    def fields(self, anchor: float) -> list[str]:
        rule = self.rule
        items = {
            "id": self.id, "queue": self.queue, "job": self.job, "data": json.dumps(self.data),
            "options": json.dumps(self.options, default=_json_default), "every": _text(rule.every),
            "pattern": rule.pattern or "", "tz": rule.tz, "start": _text(rule.start), "end": _text(rule.end),
            "limit": _text(rule.limit), "immediately": "1" if rule.immediately else "", "anchor": repr(anchor),
            "origin": self.origin, "digest": self.digest, "created_at": repr(time.time()),
        }
        return [item for pair in items.items() for item in pair]


def _text(value: Any) -> str:
    return "" if value is None else repr(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"{value!r} is not JSON")


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise InvalidScheduler(f"{what} must be a number of seconds > 0 (or a timedelta), not {value!r}.")
    return float(value)


def _moment(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidScheduler(f"{what} must be an aware datetime (e.g. django.utils.timezone.now() + timedelta(...))"
                               f", not {value!r}.")
    return value.timestamp()


def check_pattern(pattern: Any, tz: str) -> str:
    """``pattern`` as a valid cron expression (5 fields, or 6 with seconds first).

    Raises:
        InvalidScheduler: it is not one; the message says which field is wrong.
    """
    if not isinstance(pattern, str) or len(pattern.split()) not in (5, 6):
        raise InvalidScheduler(f"pattern must be a cron expression of 5 fields (minute hour day month weekday), or 6 "
                               f"with seconds first, e.g. '0 9 * * *' (09:00 daily); not {pattern!r}.")
    try:
        CronSim(pattern, datetime.now(ZoneInfo(tz)))
    except CronSimError as e:
        raise InvalidScheduler(f"pattern {pattern!r} is not a valid cron expression: {e}.") from None
    return " ".join(pattern.split())


def define(scheduler_id: Any, queue: str, job: Any, data: Mapping[str, Any] | None = None, *, every: Any = None,
           pattern: Any = None, tz: Any = None, start_date: Any = None, end_date: Any = None, limit: Any = None,
           immediately: Any = False, origin: str = "api", **options: Any) -> Definition:
    """Check a scheduler and return its :class:`Definition`.

    Raises:
        InvalidScheduler: the id, rule, dates or limit are not valid.
        UnknownJob: ``job`` is not registered; InvalidJobOptions: an option is not valid or belongs to another
            queue; InvalidJobData: ``data`` is not small JSON.
    """
    if not isinstance(scheduler_id, str) or not SCHEDULER_ID_RE.match(scheduler_id):
        raise InvalidScheduler(f"A scheduler id must be 1 to 90 letters, digits, '-' or '_' (e.g. 'daily-digest'), "
                               f"not {scheduler_id!r}.")
    where = f"job scheduler {scheduler_id!r}"
    if (every is None) == (pattern is None):
        raise InvalidScheduler(f"{where}: give exactly one of every= (seconds) or pattern= (cron), "
                               f"not {'both' if every is not None else 'neither'}.")
    zone = tz if tz is not None else settings.TIME_ZONE
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduler(f"{where}: tz {zone!r} is not a time zone name (e.g. 'Europe/Berlin').") from None
    try:
        rule = Rule(
            every=_seconds(every, f"{where}: every") if every is not None else None,
            pattern=check_pattern(pattern, str(zone)) if pattern is not None else None,
            tz=str(zone), start=_moment(start_date, f"{where}: start_date"),
            end=_moment(end_date, f"{where}: end_date"), immediately=bool(immediately),
        )
    except InvalidScheduler as e:
        raise InvalidScheduler(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidScheduler(f"{where}: limit must be a whole number of runs ≥ 1 (or None), not {limit!r}.")
        rule = Rule(**{**rule.__dict__, "limit": limit})
    if rule.start is not None and rule.end is not None and rule.end < rule.start:
        raise InvalidScheduler(f"{where}: end_date is before start_date.")
    refused = sorted(set(options) & set(REFUSED_OPTIONS))
    if refused:
        raise InvalidJobOptions(f"{where}: {', '.join(refused)} cannot be given; each run's id and due time come "
                                "from the scheduler (its id and its tick).")
    definition = get_job_definition(job)
    if definition.queue != queue:
        raise InvalidJobOptions(f"{where}: job {definition.name!r} belongs to queue {definition.queue!r} (its @job "
                                f"decorator), not {queue!r}.")
    from .options import JobOptions

    JobOptions.parse(options, where)  # every option checked now, not at the first run
    data = dict(data or {})
    encode_payload(data, get_config().max_payload_bytes)  # InvalidJobData now, not at the first run
    digest = hashlib.sha256(json.dumps(
        [queue, definition.name, data, options, rule.__dict__, origin], sort_keys=True, default=_json_default,
    ).encode()).hexdigest()[:32]
    return Definition(scheduler_id, queue, definition.name, data, options, rule, origin, digest)


def _read(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in raw.items()}


def _number(text: str) -> float | None:
    return float(text) if text else None


def _rule_of(item: Mapping[str, str]) -> Rule:
    return Rule(every=_number(item["every"]), pattern=item["pattern"] or None, tz=item["tz"],
                start=_number(item["start"]), end=_number(item["end"]),
                limit=int(item["limit"]) if item["limit"] else None, immediately=bool(item["immediately"]))


def _aware(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def describe(item: Mapping[str, str]) -> dict[str, Any]:
    """A scheduler's hash as the API returns it (see :meth:`Queue.get_job_schedulers`)."""
    every = _number(item.get("every", ""))
    last = item.get("last", "")
    return {
        "id": item["id"], "queue": item["queue"], "job": item["job"], "every": every,
        "pattern": item.get("pattern") or None, "tz": item["tz"], "next": _aware(_number(item.get("next", ""))),
        "last": _aware(int(last) / 1000 if last else None), "iteration_count": int(item.get("iteration_count") or 0),
        "limit": int(item["limit"]) if item.get("limit") else None, "start_date": _aware(_number(item["start"])),
        "end_date": _aware(_number(item["end"])), "data": json.loads(item["data"]),
        "options": json.loads(item["options"]), "origin": item["origin"],
        "rule": _rule_of(item).describe(), "ended": not item.get("next"),
    }


class Schedulers:
    """The schedulers of one queue (used through :class:`queues.Queue`'s methods)."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.connection = queue.connection
        self.keys = queue.keys

    def _keys(self, scheduler_id: str) -> list[str]:
        k = self.keys
        return [schedulers_key(self.queue.name), scheduler_key(self.queue.name, scheduler_id), k.wait, k.prioritized,
                k.scheduled, k.marker, k.priority_counter, QUEUES_SET, k.events]

    def _call(self, op: str, scheduler_id: str, *, expected: str = "", tick: float | None = None,
              run: NewJob | None = None, digest: str = "", items: list[str] | None = None) -> int:
        args = [op, scheduler_id, expected, "" if tick is None else f"{tick:.3f}", JOB_PREFIX, self.queue.rq.key,
                get_config().events_max_length, run.id if run else "", run.name if run else "",
                msgpack.packb([x for pair in run.fields.items() for x in pair], use_bin_type=False) if run else b"",
                round(time.time() * 1000), digest, *(items or [])]
        return int(script(self.connection, "scheduler")(keys=self._keys(scheduler_id), args=args))

    def _run(self, scheduler_id: str, job: str, data: Mapping[str, Any], options: Mapping[str, Any],
             tick: float | None) -> NewJob:
        """The hash of a run: the job as ``Queue.add`` would write it, marked with its scheduler and tick."""
        job_id = run_id(scheduler_id, tick) if tick is not None else \
            f"{RUN_PREFIX}{scheduler_id}-manual{time.time_ns() // 1000}"
        new = self.queue._prepare({"job": job, "data": dict(data), "options": {**options, "job_id": job_id}}, 0)
        new.fields[b"scheduler"] = scheduler_id.encode()
        if tick is None:
            return new
        new.fields[b"tick"] = b"%d" % round(tick * 1000)
        new.fields[b"status"] = b"scheduled"
        return type(new)(new.id, new.name, new.fields, "d", tick)

    # --- the API ---------------------------------------------------------------------------------------------

    def upsert(self, definition: Definition) -> dict[str, Any]:
        """Write ``definition``; an unchanged one (same digest) is left as it is, rhythm and next run included."""
        key = scheduler_key(self.queue.name, definition.id)
        for _ in range(10):
            old = self.connection.hget(key, "digest")
            if old is not None and old.decode() == definition.digest:
                break
            now = time.time()
            anchor = definition.rule.start if definition.rule.start is not None else 0.0  # BullMQ: multiples
            tick = definition.rule.first(now, anchor)
            count = int(self.connection.hget(key, "iteration_count") or 0)
            if definition.rule.limit is not None and count >= definition.rule.limit:
                tick = None
            run = self._run(definition.id, definition.job, definition.data, definition.options, tick) \
                if tick is not None else None
            done = self._call("upsert", definition.id, expected=old.decode() if old else "", tick=tick, run=run,
                              digest=definition.digest, items=definition.fields(anchor))
            if done >= 0:
                break
        found = self.get(definition.id)
        assert found is not None
        return found

    def remove(self, scheduler_id: str) -> bool:
        return self._call("remove", scheduler_id) == 1

    def get(self, scheduler_id: str) -> dict[str, Any] | None:
        raw = self.connection.hgetall(scheduler_key(self.queue.name, scheduler_id))
        return describe(_read(raw)) if raw else None

    def all(self) -> list[dict[str, Any]]:
        """Every scheduler of the queue, soonest next run first (ended ones last)."""
        ids = [raw.decode() for raw in self.connection.zrange(schedulers_key(self.queue.name), 0, -1)]
        pipe = self.connection.pipeline(transaction=False)
        for scheduler_id in ids:
            pipe.hgetall(scheduler_key(self.queue.name, scheduler_id))
        return [describe(_read(raw)) for raw in pipe.execute() if raw]

    def run_now(self, scheduler_id: str) -> str:
        """Add one run of the scheduler now, outside its rhythm (its next run stays where it is); return its id.

        Raises:
            InvalidScheduler: there is no such scheduler.
        """
        raw = self.connection.hgetall(scheduler_key(self.queue.name, scheduler_id))
        if not raw:
            raise InvalidScheduler(f"Queue {self.queue.name!r} has no job scheduler {scheduler_id!r}.")
        item = _read(raw)
        run = self._run(scheduler_id, item["job"], json.loads(item["data"]), json.loads(item["options"]), None)
        self.queue._write([run])
        return run.id

    # --- the worker's side -----------------------------------------------------------------------------------

    def advance(self, scheduler_id: str, taken_id: str, tick_ms: bytes | None) -> None:
        """A worker took a run of the scheduler: add the run after it (see the module docstring)."""
        if not tick_ms:
            self._call("ran", scheduler_id)
            return
        self._schedule_next("advance", scheduler_id, taken_id, after=int(tick_ms) / 1000)

    def _schedule_next(self, op: str, scheduler_id: str, pending: str, *, after: float) -> int:
        raw = self.connection.hgetall(scheduler_key(self.queue.name, scheduler_id))
        if not raw:
            return 0  # removed meanwhile
        item = _read(raw)
        if item.get("pending") != pending:
            return 0  # another worker (or an upsert) moved it on already
        rule = _rule_of(item)
        count = int(item.get("iteration_count") or 0) + (1 if op == "advance" else 0)
        tick = None if rule.limit is not None and count >= rule.limit else \
            rule.after(max(time.time(), after), float(item["anchor"]))
        try:
            run = self._run(scheduler_id, item["job"], json.loads(item["data"]), json.loads(item["options"]), tick) \
                if tick is not None else None
        except QueuesError as e:  # the code or settings changed under a scheduler kept in Redis
            logger.error("job scheduler %s of queue %s cannot add its next run, so it ends: %s (upsert it again, "
                         "or remove it)", scheduler_id, self.queue.name, e)
            run, tick = None, None
        done = self._call(op, scheduler_id, expected=pending, tick=tick, run=run)
        if done and tick is None:
            logger.info("job scheduler %s of queue %s has ended (limit or end date reached)", scheduler_id,
                        self.queue.name)
        return done

    def repair(self) -> int:
        """Give a next run to every scheduler whose pending run is gone or ended without one; return how many."""
        ids = self.connection.zrangebyscore(schedulers_key(self.queue.name), "-inf", "(+inf")
        if not ids:
            return 0
        pipe = self.connection.pipeline(transaction=False)
        for raw in ids:
            pipe.hget(scheduler_key(self.queue.name, raw.decode()), "pending")
        pending = [(raw.decode(), value.decode()) for raw, value in zip(ids, pipe.execute(), strict=True) if value]
        for _, run in pending:
            pipe.hget(JOB_PREFIX + run, "status")
        repaired = 0
        for (scheduler_id, run), status in zip(pending, pipe.execute(), strict=True):
            if status is None or status.decode() in ("finished", "failed", "stopped", "canceled"):
                if self._schedule_next("repair", scheduler_id, run, after=time.time()):
                    logger.warning("job scheduler %s of queue %s: its pending run %s was %s without adding the next "
                                   "one; next run added", scheduler_id, self.queue.name, run,
                                   "removed" if status is None else status.decode())
                    repaired += 1
        return repaired


# --- settings (QUEUES_JOB_SCHEDULERS) -------------------------------------------------------------------------

def settings_definitions() -> tuple[list[Definition], list[tuple[str, str]]]:
    """``QUEUES_JOB_SCHEDULERS`` checked: the definitions, and (message, hint) for each problem."""
    raw = getattr(settings, SETTING, {})
    if not isinstance(raw, Mapping):
        return [], [(f"{SETTING} must be a dict of scheduler id → definition.",
                     f"e.g. {SETTING} = {{'nightly': {{'queue': 'cleanup', 'job': 'x', 'pattern': '0 3 * * *'}}}}")]
    definitions, problems = [], []
    known = get_config().queues
    for scheduler_id, spec in raw.items():
        where = f"{SETTING}[{scheduler_id!r}]"
        if not isinstance(spec, Mapping):
            problems.append((f"{where} must be a dict.", "Give at least 'queue', 'job' and 'every' or 'pattern'."))
            continue
        unknown = [key for key in spec if key not in SETTING_KEYS and key not in OPTION_NAMES]
        if unknown:
            problems.append((f"{where} has unknown key(s) {', '.join(map(repr, unknown))}.",
                             f"Use {', '.join(SETTING_KEYS)}, or job options ({', '.join(OPTION_NAMES)})."))
            continue
        queue = spec.get("queue")
        if queue not in known:
            problems.append((f"{where}['queue'] is {queue!r}, which is not in QUEUES.",
                             f"Name one of: {', '.join(known) or 'none'}."))
            continue
        given = {key: value for key, value in spec.items() if key != "queue"}
        try:
            definitions.append(define(scheduler_id, queue, given.pop("job", None), given.pop("data", None),
                                      origin="settings", **given))
        except (InvalidScheduler, InvalidJobOptions, QueuesError) as e:
            problems.append((f"{where}: {e}", "Fix the definition (README, 'Job schedulers')."))
    return definitions, problems


def sync_settings(connection: redis.Redis | None = None) -> None:
    """Upsert every scheduler of ``QUEUES_JOB_SCHEDULERS`` (unchanged ones are left alone) and remove those that
    came from the settings and are no longer there. Schedulers made through the API are never touched."""
    from .queue import Queue

    definitions, problems = settings_definitions()
    if problems:
        logger.error("%s has errors (run manage.py check); its schedulers are left as they are", SETTING)
        return
    wanted = {(d.queue, d.id) for d in definitions}
    for definition in definitions:
        Queue(definition.queue, connection=connection).upsert_job_scheduler_definition(definition)
    for name in get_config().queues:
        queue = Queue(name, connection=connection)
        for item in queue.get_job_schedulers():
            if item["origin"] == "settings" and (name, item["id"]) not in wanted:
                queue.remove_job_scheduler(item["id"])
                logger.info("job scheduler %s of queue %s removed: it is no longer in %s", item["id"], name, SETTING)
