"""Queue management: list jobs by state, retry, remove, clean, drain and obliterate (BullMQ's ``Queue`` API).

``queues.queue.Queue`` and ``queues.job.Job`` call these; they take a Redis client and a queue name.

Every removal deletes all a job leaves in Redis: its hash ``rq:job:<id>``, its results ``rq:results:<id>``, its
executions (``rq:executions:<id>`` and each ``rq:execution:<id>:<execution>``), RQ's dependency keys, and its entry
in the queue's list or sorted sets. Work on many jobs runs in Lua scripts of at most :data:`BATCH` jobs each, called
again until done: removing a million jobs never blocks Redis for more than a few milliseconds at a time (each call
is atomic, the whole operation is not: jobs added meanwhile may or may not be included).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq.defaults import RQ_KEY_PREFIX
from rq.intermediate_queue import IntermediateQueue
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ReadyJobRegistry,
    StartedJobRegistry,
)
from rq.scheduler import SCHEDULER_LOCKING_KEY_TEMPLATE
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from .conf import get_definition
from .events import publish
from .exceptions import InvalidJobOptions, QueueBusy
from .job import Job, RQJob
from .scripts import JOB_PREFIX, QUEUES_SET, RESULTS_PREFIX, QueueKeys, registered, script

BATCH = 500  # jobs one script call removes, moves or looks at, at most (measured: 3-9 ms a call, 1M jobs)
STATES = ("waiting", "prioritized", "delayed", "active", "completed", "failed")
CLEANABLE = ("completed", "failed", "delayed", "waiting", "prioritized")
RETRYABLE = ("failed", "completed")
_PREFIXES = (JOB_PREFIX, RESULTS_PREFIX, f"{RQ_KEY_PREFIX}:executions:", f"{RQ_KEY_PREFIX}:")

# Shared by every script: ARGV[1..4] are the key prefixes above; drop(id) deletes everything of one job, including
# a running job's executions (``rq:execution:<id>:<execution>`` and its entry in its worker's executions set).
_DROP = """
local JOB, RESULTS, EXECS, RQ = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function drop(id)
  local execs = EXECS .. id
  local running = redis.call('ZRANGE', execs, 0, -1)
  if #running > 0 then
    local worker = redis.call('HGET', JOB .. id, 'worker_name')
    for _, e in ipairs(running) do
      redis.call('DEL', RQ .. 'execution:' .. id .. ':' .. e)
      if worker and worker ~= '' then redis.call('SREM', RQ .. 'worker:' .. worker .. ':executions', id .. ':' .. e) end
    end
  end
  redis.call('DEL', JOB .. id, RESULTS .. id, JOB .. id .. ':dependents', JOB .. ':' .. id .. ':dependencies', execs)
end
local function state_of(status, priority)
  if status == 'queued' then
    if priority and tonumber(priority) and tonumber(priority) > 0 then return 'prioritized' end
    return 'waiting'
  end
  local states = {scheduled = 'delayed', started = 'active', finished = 'completed', failed = 'failed',
                  stopped = 'failed', canceled = 'failed'}
  return states[status] or 'unknown'
end
"""

REMOVE = _DROP + """
-- KEYS: wait, prioritized, scheduled, finished, failed, deferred, canceled. ARGV[5]: job id, ARGV[6]: queue name
-- Returns {1, previous state} when removed, {-1, 'active'} when refused (running), {0, ''} when not found.
local id = ARGV[5]
local f = redis.call('HMGET', JOB .. id, 'status', 'priority', 'origin')
if f[3] and f[3] ~= ARGV[6] then return {0, ''} end
if f[1] == 'started' then return {-1, 'active'} end
local found = f[1] and 1 or 0
if f[1] == 'queued' or not f[1] then
  if redis.call('LREM', KEYS[1], 0, id) > 0 then found = 1 end
end
for i = 2, #KEYS do
  if redis.call('ZREM', KEYS[i], id) > 0 then found = 1 end
end
if found == 0 then return {0, ''} end
drop(id)
return {1, f[1] and state_of(f[1], f[2]) or 'unknown'}
"""

RETRY = _DROP + """
-- KEYS: wait, prioritized, marker, priority counter, finished, failed
-- ARGV[5]: queue name, ARGV[6]: enqueued_at text, ARGV[7]: 'one' (ARGV[8] = job id) or a registry key to take up
-- to ARGV[8] jobs from (oldest first). Returns {id, previous state, ...} of the jobs moved back.
local queue, now = ARGV[5], ARGV[6]
local final = {failed = true, finished = true, stopped = true, canceled = true}
local function retry(id)
  local key = JOB .. id
  local f = redis.call('HMGET', key, 'status', 'priority', 'retry_intervals', 'origin')
  if not final[f[1] or ''] or f[4] ~= queue then return nil end
  redis.call('ZREM', KEYS[5], id)
  redis.call('ZREM', KEYS[6], id)
  redis.call('HDEL', key, 'exc_info', 'stalled_count', 'number_of_retries', 'result', 'progress')
  local fields = {'status', 'queued', 'enqueued_at', now, 'started_at', '', 'ended_at', '', 'last_heartbeat', '',
                  'worker_name', ''}
  if f[3] then
    local ok, intervals = pcall(cjson.decode, f[3])
    if ok and type(intervals) == 'table' then
      fields[#fields + 1] = 'retries_left'
      fields[#fields + 1] = #intervals
    end
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('PERSIST', key)
  local priority = tonumber(f[2] or '0') or 0
  if priority > 0 then
    local c = redis.call('INCR', KEYS[4]) % 4294967296
    redis.call('ZADD', KEYS[2], string.format('%.0f', (priority - 1) * 4294967296 + c), id)
  else
    redis.call('RPUSH', KEYS[1], id)
  end
  return f[1] == 'finished' and 'completed' or 'failed'
end
local moved = {}
local function add(id)
  local prev = retry(id)
  if prev then
    moved[#moved + 1] = id
    moved[#moved + 1] = prev
  end
end
if ARGV[7] == 'one' then
  add(ARGV[8])
else
  for _, id in ipairs(redis.call('ZRANGE', ARGV[7], 0, tonumber(ARGV[8]) - 1)) do
    redis.call('ZREM', ARGV[7], id)  -- an entry whose job is gone or not final is a leftover: dropped
    add(id)
  end
end
if #moved > 0 then redis.call('ZADD', KEYS[3], 0, '0') end
return moved
"""

CLEAN = _DROP + """
-- KEYS: a list (waiting) or a sorted set. ARGV[5]: 'list' or 'zset', ARGV[6]: cutoff (RQ's time text),
-- ARGV[7]: rank to start at, ARGV[8]: entries to look at, ARGV[9]: jobs to remove at most, ARGV[10]: '1' to
-- only find the old jobs (what a clean's confirmation counts), removing nothing.
-- A job is old when its first set time of ended_at, started_at, created_at is at or before the cutoff (BullMQ:
-- finishedOn, processedOn, timestamp); a job whose hash is gone is removed too. Returns {ids, next rank, done}.
local key, list, cutoff, dry = KEYS[1], ARGV[5] == 'list', ARGV[6], ARGV[10] == '1'
local cursor, batch, room = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local ids
if list then ids = redis.call('LRANGE', key, cursor, cursor + batch - 1)
else ids = redis.call('ZRANGE', key, cursor, cursor + batch - 1) end
local removed, kept, looked = {}, 0, 0
for i, id in ipairs(ids) do
  if #removed >= room then break end
  looked = i
  local stamp = nil
  for _, value in ipairs(redis.call('HMGET', JOB .. id, 'ended_at', 'started_at', 'created_at')) do
    if value and value ~= '' then stamp = value break end
  end
  if not stamp or stamp <= cutoff then
    if not dry then
      if list then redis.call('LSET', key, cursor + i - 1, '') else redis.call('ZREM', key, id) end
      drop(id)
    end
    removed[#removed + 1] = id
  else
    kept = kept + 1
  end
end
if list and #removed > 0 and not dry then redis.call('LREM', key, #removed, '') end
return {removed, cursor + kept + (dry and #removed or 0), (#ids < batch and looked == #ids) and 1 or 0}
"""

DRAIN = _DROP + """
-- KEYS: the waiting list, then sorted sets (prioritized, maybe scheduled). ARGV[5]: jobs to remove at most.
-- Returns the number removed.
local room = tonumber(ARGV[5])
local removed = 0
for k, key in ipairs(KEYS) do
  if removed >= room then break end
  local ids = {}
  if k == 1 then
    ids = redis.call('LPOP', key, room - removed) or {}
  else
    local popped = redis.call('ZPOPMIN', key, room - removed)
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  end
  for _, id in ipairs(ids) do drop(id) end
  removed = removed + #ids
end
return removed
"""

OBLITERATE = _DROP + """
-- KEYS: the lists (ARGV[6] of them), then the sorted sets; the one at index ARGV[7] holds '<job id>:<execution>'
-- members (RQ's started registry). ARGV[5]: jobs to remove at most. Returns the number of entries removed.
local room, lists, wip = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local removed = 0
for k, key in ipairs(KEYS) do
  if removed >= room then break end
  local ids = {}
  if k <= lists then
    ids = redis.call('LPOP', key, room - removed) or {}
  else
    local popped = redis.call('ZPOPMIN', key, room - removed)
    for i = 1, #popped, 2 do
      ids[#ids + 1] = (k == wip) and (string.match(popped[i], '^(.*):[^:]*$') or popped[i]) or popped[i]
    end
  end
  for _, id in ipairs(ids) do drop(id) end
  removed = removed + #ids
end
return removed
"""

HOLD = """
-- KEYS: started registry, paused flag. ARGV[1]: '1' to go on whatever runs.
-- Pauses the queue (no worker takes a job from now on) unless jobs are active; returns the active count.
local active = redis.call('ZCARD', KEYS[1])
if active > 0 and ARGV[1] ~= '1' then return active end
redis.call('SET', KEYS[2], '1')
return 0
"""

_SOURCES = {"remove": REMOVE, "retry": RETRY, "clean": CLEAN, "drain": DRAIN, "obliterate": OBLITERATE, "hold": HOLD}


def _run(connection: redis.Redis, name: str, keys: list[str], args: Iterable[Any]) -> Any:
    """Run the named script (registered once per client) with the key prefixes as ARGV[1..4]."""
    return registered(connection, _SOURCES[name])(keys=keys, args=[*_PREFIXES, *args] if name != "hold" else list(args))


def registry_keys(queue: str) -> dict[str, str]:
    """RQ's registries of ``queue``, by BullMQ state (and RQ's own: deferred, canceled, ready)."""
    return {
        "active": StartedJobRegistry.key_template.format(queue),
        "completed": FinishedJobRegistry.key_template.format(queue),
        "failed": FailedJobRegistry.key_template.format(queue),
        "deferred": DeferredJobRegistry.key_template.format(queue),
        "canceled": CanceledJobRegistry.key_template.format(queue),
        "ready": ReadyJobRegistry.key_template.format(queue),
    }


# --- listing --------------------------------------------------------------------------------------------------


def job_ids(connection: redis.Redis, queue: str, state: str, start: int = 0, end: int = -1) -> list[str]:
    """The ids of ``queue``'s jobs in ``state``, ranks ``start`` to ``end`` (inclusive; -1 is the last).

    Waiting and prioritized jobs come in the order workers take them, delayed ones by due time, completed and
    failed ones newest first (by when their retention runs out), active ones by heartbeat.

    Raises:
        InvalidJobOptions: ``state`` is not one of :data:`STATES`.
    """
    keys, registries = QueueKeys.of(queue), registry_keys(queue)
    if state == "waiting":
        return [i.decode() for i in connection.lrange(keys.wait, start, end)]
    sets = {"prioritized": keys.prioritized, "delayed": keys.scheduled, **registries}
    if state not in STATES:
        raise InvalidJobOptions(f"Unknown job state {state!r}: use one of {', '.join(STATES)}.")
    members = connection.zrange(sets[state], start, end, desc=state in ("completed", "failed"))
    ids = [m.decode() for m in members]
    return [StartedJobRegistry.parse_job_id(i) for i in ids] if state == "active" else ids


def fetch_jobs(connection: redis.Redis, ids: list[str]) -> list[Job]:
    """Handles for ``ids`` in one round trip, leaving out jobs that are gone."""
    found = RQJob.fetch_many(ids, connection=connection, serializer=JSONSerializer) if ids else []
    return [Job(rq_job) for rq_job in found if rq_job is not None]


# --- one job --------------------------------------------------------------------------------------------------


def remove_job(connection: redis.Redis, queue: str, job_id: str) -> bool:
    """Remove a job of ``queue`` that is not running, with all it left in Redis; publish ``removed``.

    Returns False when ``queue`` has no such job.

    Raises:
        QueueBusy: the job is running (wait for it to end, or remove it afterwards).
    """
    keys, registries = QueueKeys.of(queue), registry_keys(queue)
    sets = [keys.prioritized, keys.scheduled, registries["completed"], registries["failed"], registries["deferred"],
            registries["canceled"]]
    code, prev = _run(connection, "remove", [keys.wait, *sets], [job_id, queue])
    if code == -1:
        raise QueueBusy(f"Job {job_id} of queue {queue!r} is running: it can be removed once it has ended.")
    if code == 1:
        publish(connection, queue, "removed", job_id=job_id, prev=prev.decode())
    return code == 1


def retry_job(connection: redis.Redis, queue: str, job_id: str) -> bool:
    """Move a failed or completed job back to waiting (or prioritized), its attempts reset.

    Publishes ``waiting`` with ``prev`` "failed" or "completed". Returns False when the job is not failed or
    completed (waiting, active, gone) or not on ``queue``.
    """
    return bool(_retry(connection, queue, "one", job_id))


def _retry(connection: redis.Redis, queue: str, mode: str, arg: str | int) -> list[str]:
    keys, registries = QueueKeys.of(queue), registry_keys(queue)
    now = utcformat(datetime.now(UTC))
    flat = [item.decode() for item in _run(connection, "retry", [
        keys.wait, keys.prioritized, keys.marker, keys.priority_counter, registries["completed"],
        registries["failed"]], [queue, now, mode, arg])]
    moved = list(zip(flat[::2], flat[1::2], strict=True))
    if moved:
        pipe = connection.pipeline(transaction=False)
        for job_id, prev in moved:
            publish(pipe, queue, "waiting", job_id=job_id, prev=prev)
        pipe.execute()
    return [job_id for job_id, _prev in moved]


def retry_jobs(connection: redis.Redis, queue: str, state: str = "failed", count: int | None = None) -> int:
    """Retry up to ``count`` (None: all) of the ``state`` jobs, oldest first, in batches; return how many.

    Raises:
        InvalidJobOptions: ``state`` is not "failed" or "completed", or ``count`` is below 0.
    """
    if state not in RETRYABLE:
        raise InvalidJobOptions(f"retry_jobs retries 'failed' or 'completed' jobs, not {state!r}.")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise InvalidJobOptions(f"count must be a whole number ≥ 0 or None (all), not {count!r}.")
    registry = registry_keys(queue)[state]
    size = connection.zcard(registry)  # jobs failing meanwhile wait for the next call
    left = size if count is None else min(count, size)
    done = 0
    while left > 0:
        want = min(BATCH, left)
        done += len(_retry(connection, queue, registry, want))
        left -= want
    return done


# --- many jobs ------------------------------------------------------------------------------------------------


def clean(connection: redis.Redis, queue: str, grace: float | timedelta, limit: int | None = 1000,
          state: str = "completed") -> list[str]:
    """Remove up to ``limit`` (None or 0: no limit) jobs in ``state`` older than ``grace``; return their ids.

    A job's age counts from when it ended, else started, else was added (BullMQ's rule). Publishes one
    ``cleaned`` event with the count.

    Raises:
        InvalidJobOptions: ``state`` cannot be cleaned, or ``grace`` / ``limit`` is negative or not a number.
    """
    if state not in CLEANABLE:
        raise InvalidJobOptions(f"clean() takes a state among {', '.join(CLEANABLE)}, not {state!r}.")
    seconds = grace.total_seconds() if isinstance(grace, timedelta) else grace
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise InvalidJobOptions(f"grace must be seconds ≥ 0 or a timedelta, not {grace!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidJobOptions(f"limit must be a whole number ≥ 0 (0 or None: no limit), not {limit!r}.")
    removed = _clean(connection, queue, state, seconds, limit, dry=False)
    publish(connection, queue, "cleaned", count=len(removed), state=state)
    return removed


def count_old(connection: redis.Redis, queue: str, state: str, grace: timedelta) -> int:
    """How many ``state`` jobs of ``queue`` :func:`clean` with ``grace`` and no limit would remove now (the same
    script, removing nothing): what a clean's confirmation says. Reads :data:`BATCH` jobs a call."""
    return len(_clean(connection, queue, state, grace.total_seconds(), None, dry=True))


def _clean(connection: redis.Redis, queue: str, state: str, seconds: float, limit: int | None, *,
           dry: bool) -> list[str]:
    keys = QueueKeys.of(queue)
    key = {"waiting": keys.wait, "prioritized": keys.prioritized, "delayed": keys.scheduled,
           **registry_keys(queue)}[state]
    cutoff = utcformat(datetime.now(UTC) - timedelta(seconds=seconds))
    found: list[str] = []
    cursor, done = 0, 0
    while not done and (not limit or len(found) < limit):
        room = BATCH if not limit else min(BATCH, limit - len(found))
        ids, cursor, done = _run(connection, "clean", [key], [
            "list" if state == "waiting" else "zset", cutoff, cursor, BATCH, room, "1" if dry else ""])
        found += [i.decode() for i in ids]
    return found


def apply_retention(connection: redis.Redis, queue: str) -> dict[str, int]:
    """Apply the queue's ``remove_on_complete`` / ``remove_on_fail`` (its ``default_job_options``) to every
    completed and failed job now; return how many of each went.

    Jobs trim their registry as they end (at most 100 per job), and a job hash past its age limit expires in Redis
    while its registry entry stays listed until then: this is the daily sweep the ``cleanup`` scheduler runs
    (``notifications.cleanup``). Each call removes at most 200 jobs, so Redis never stalls on it.
    """
    options = get_definition(queue).default_job_options
    keys = QueueKeys.of(queue)
    removed = {}
    for state, registry, retention in (("completed", keys.completed, options.remove_on_complete),
                                       ("failed", keys.failed, options.remove_on_fail)):
        keep = "" if retention.count is None else retention.count
        total = 0
        while True:
            went = script(connection, "retain")(keys=[registry], args=[time.time(), keep, JOB_PREFIX, RESULTS_PREFIX])
            total += went
            if not went:
                break
        removed[state] = total
    return removed


def drain(connection: redis.Redis, queue: str, *, include_delayed: bool = False) -> int:
    """Remove every waiting and prioritized job (and delayed ones with ``include_delayed``); return how many.

    Active, completed and failed jobs stay. Publishes ``drained`` with the count.
    """
    keys = QueueKeys.of(queue)
    sources = [keys.wait, keys.prioritized, *([keys.scheduled] if include_delayed else [])]
    pipe = connection.pipeline(transaction=False)
    pipe.llen(keys.wait)
    for key in sources[1:]:
        pipe.zcard(key)
    left = sum(pipe.execute())  # jobs added while draining are left for the next drain
    removed = 0
    while left > 0:
        step = _run(connection, "drain", sources, [min(BATCH, left)])
        if not step:
            break
        removed += step
        left -= step
    publish(connection, queue, "drained", count=removed)
    return removed


def obliterate(connection: redis.Redis, queue: str, *, force: bool = False) -> int:
    """Remove the queue and everything of it from Redis; return the number of jobs removed.

    The queue is paused first (no worker takes a job from then on); then every job (waiting, prioritized,
    delayed, active with ``force``, completed, failed) goes with all its keys, and so do the queue's own keys:
    flags, limiter, events, metrics, and its entry in ``rq:queues``. The workers' own keys (``rq:workers:<queue>``)
    are theirs and stay. A job still running when forced is removed, but its worker writes its outcome when it
    ends: obliterate with the workers stopped, or again after they have.

    Raises:
        QueueBusy: jobs are active and ``force`` is not set (nothing was changed).
    """
    keys, registries = QueueKeys.of(queue), registry_keys(queue)
    active = _run(connection, "hold", [registries["active"], keys.paused], ["1" if force else "0"])
    if active:
        raise QueueBusy(f"Queue {queue!r} has {active} active job(s): wait until they end (or stop the workers), "
                        "or pass force=True to obliterate it all the same.")
    lists = [keys.wait, IntermediateQueue.get_intermediate_queue_key(keys.wait)]
    sets = [keys.prioritized, keys.scheduled, registries["active"], registries["completed"], registries["failed"],
            registries["deferred"], registries["canceled"], registries["ready"]]
    wip = len(lists) + sets.index(registries["active"]) + 1
    removed = 0
    while True:
        step = _run(connection, "obliterate", [*lists, *sets], [BATCH, len(lists), wip])
        if not step:
            break
        removed += step
    pipe = connection.pipeline()
    pipe.unlink(*queue_keys(queue))
    pipe.srem(QUEUES_SET, keys.wait)
    pipe.execute()
    return removed


def queue_keys(queue: str) -> list[str]:
    """Every key of ``queue`` that is not a job's: structures, flags, limiter, events, metrics, locks."""
    keys = QueueKeys.of(queue)
    return [keys.wait, IntermediateQueue.get_intermediate_queue_key(keys.wait), keys.prioritized, keys.scheduled,
            keys.marker, keys.priority_counter, keys.paused, keys.limiter, keys.rate_limited, keys.events,
            keys.metrics_completed, keys.metrics_failed, keys.backlog, f"{RQ_KEY_PREFIX}:stalled-check:{queue}",
            f"{RQ_KEY_PREFIX}:clean_registries:{queue}", SCHEDULER_LOCKING_KEY_TEMPLATE % queue,
            *registry_keys(queue).values()]
