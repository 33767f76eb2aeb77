"""The Lua scripts that make adding, taking and trimming jobs atomic, and the keys they use.

Keys, beside RQ's own (``rq:queue:<q>`` waiting list, ``rq:job:<id>`` hash, ``rq:scheduled:<q>``,
``rq:finished:<q>``, ``rq:failed:<q>``):

- ``rq:prioritized:<q>``: sorted set of prioritized job ids, score ``(priority - 1) * 2**32 + counter``
  (lower first, FIFO within a priority: BullMQ's scheme), counter in ``rq:prioritized-counter:<q>``.
  ``priority - 1`` keeps every score below 2**53, where a double (a Lua number, a sorted-set score) still
  counts in ones: ``priority * 2**32`` reaches 2**53 at the largest priority, and FIFO there was lost.
- ``rq:paused:<q>``: set while the queue is paused; workers take nothing from it (other queues flow).
- ``rq:limiter:<q>``: the start times of the last ``limiter.max`` jobs (a sliding window shared by every
  worker); ``rq:rate-limited:<q>``: set with an expiry by ``Queue.rate_limit(seconds)``.
- ``rq:marker:<q>``: a one-member sorted set a worker blocks on (``BZPOPMIN``) while it has nothing to
  do. Every add sets it; a worker that takes a job sets it again while more jobs wait, so idle workers
  wake one after another. A worker also wakes by itself when the next delayed job falls due.
- ``rq:events:<q>``: the queue's event stream (capped ``XADD MAXLEN ~``; see ``queues.events``), written by
  these scripts in the same step as the change each event reports.
- ``rq:metrics:<q>:completed`` / ``rq:metrics:<q>:failed``: hashes of jobs per epoch minute, plus ``total``;
  minutes past ``QUEUES_METRICS_MINUTES`` are dropped by the FINISH script.
- ``rq:dashboard:backlog:<q>``: the admin dashboard's waiting-count samples (see ``queues.dashboard``).

``rq:scheduled:<q>`` is RQ's scheduled registry, scored here to the microsecond (RQ scores whole
seconds): the worker promotes due jobs itself, inside the same script that takes the next job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

JOB_PREFIX = "rq:job:"
RESULTS_PREFIX = "rq:results:"
QUEUES_SET = "rq:queues"
PROMOTE_LIMIT = 1000  # delayed jobs promoted per queue per call; the rest on the next call

ADD = """
-- KEYS: wait list, prioritized zset, scheduled zset, marker zset, priority counter, rq:queues set, events stream
-- ARGV: queue key, job key prefix, events max length (0: none), then per job: id, mode (w|p|d), score, ttl, name,
--       n, n field/value items
redis.call('SADD', KEYS[6], ARGV[1])
local prefix = ARGV[2]
local maxlen = tonumber(ARGV[3])
local function emit(...)
  if maxlen > 0 then pcall(redis.call, 'XADD', KEYS[7], 'MAXLEN', '~', maxlen, '*', ...) end
end
local out = {}
local added = false
local i = 4
while i <= #ARGV do
  local id, mode, score, ttl, name, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
    ARGV[i + 4], tonumber(ARGV[i + 5])
  local key = prefix .. id
  if redis.call('EXISTS', key) == 1 then
    out[#out + 1] = 0
  else
    redis.call('HSET', key, unpack(ARGV, i + 6, i + 5 + n))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    emit('event', 'added', 'job_id', id, 'name', name)
    if mode == 'w' then
      redis.call('RPUSH', KEYS[1], id)
      emit('event', 'waiting', 'job_id', id)
    elseif mode == 'p' then
      local counter = redis.call('INCR', KEYS[5]) % 4294967296
      redis.call('ZADD', KEYS[2], string.format('%.0f', (score - 1) * 4294967296 + counter), id)
      emit('event', 'prioritized', 'job_id', id, 'priority', ARGV[i + 2])
    else
      redis.call('ZADD', KEYS[3], ARGV[i + 2], id)
      emit('event', 'delayed', 'job_id', id, 'due', ARGV[i + 2])
    end
    out[#out + 1] = 1
    added = true
  end
  i = i + 6 + n
end
if added then redis.call('ZADD', KEYS[4], 0, '0') end
return out
"""

DEQUEUE = """
-- KEYS: per queue, in the worker's order: wait, prioritized, scheduled, marker, priority counter, paused flag,
--       limiter window (sorted set of start times), manual rate limit flag, events stream
-- ARGV: now (seconds), enqueued_at text, job key prefix, promote limit, events max length (0: none), then per
--       queue: limiter max (0: none), limiter duration (seconds, a small safety margin included)
-- Returns {queue number (1-based) or 0, job id or '', the time to look again (seconds) or '-1'}
local prefix = ARGV[3]
local now = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[5])
local events = nil
local function emit(...)
  if maxlen > 0 then pcall(redis.call, 'XADD', events, 'MAXLEN', '~', maxlen, '*', ...) end
end
local wake = nil
local function wake_at(at)
  if wake == nil or at < wake then wake = at end
end
for q = 0, #KEYS / 9 - 1 do
  local wait, prio, sched, marker, counter, paused, window, limited = KEYS[q * 9 + 1], KEYS[q * 9 + 2],
    KEYS[q * 9 + 3], KEYS[q * 9 + 4], KEYS[q * 9 + 5], KEYS[q * 9 + 6], KEYS[q * 9 + 7], KEYS[q * 9 + 8]
  events = KEYS[q * 9 + 9]
  local due = redis.call('ZRANGEBYSCORE', sched, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
  for _, id in ipairs(due) do
    redis.call('ZREM', sched, id)
    local key = prefix .. id
    local found = redis.call('HMGET', key, 'status', 'priority')
    if found[1] then
      local priority = tonumber(found[2] or '0') or 0
      if priority > 0 then
        local c = redis.call('INCR', counter) % 4294967296
        redis.call('ZADD', prio, string.format('%.0f', (priority - 1) * 4294967296 + c), id)
        emit('event', 'prioritized', 'job_id', id, 'priority', found[2], 'prev', 'delayed')
      else
        redis.call('RPUSH', wait, id)
        emit('event', 'waiting', 'job_id', id, 'prev', 'delayed')
      end
      redis.call('HSET', key, 'status', 'queued', 'enqueued_at', ARGV[2])
    end
  end
  if redis.call('EXISTS', paused) == 0 then
    local limit_max, limit_for = tonumber(ARGV[6 + q * 2]), tonumber(ARGV[7 + q * 2])
    local hold = nil
    local manual = redis.call('PTTL', limited)
    if manual > 0 then hold = now + manual / 1000 end
    if hold == nil and limit_max > 0 then
      redis.call('ZREMRANGEBYSCORE', window, '-inf', now - limit_for)
      if redis.call('ZCARD', window) >= limit_max then
        hold = tonumber(redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')[2]) + limit_for
      end
    end
    if hold ~= nil then
      if redis.call('LLEN', wait) > 0 or redis.call('ZCARD', prio) > 0 then wake_at(hold) end
    else
      local id = redis.call('LPOP', wait)
      local prev = 'waiting'
      if not id then
        local popped = redis.call('ZPOPMIN', prio)
        if popped[1] then id = popped[1] end
        prev = 'prioritized'
      end
      if id then
        if limit_max > 0 then
          redis.call('ZADD', window, ARGV[1], ARGV[1] .. ':' .. id)
          redis.call('PEXPIRE', window, math.ceil(limit_for * 1000) + 1000)
        end
        emit('event', 'active', 'job_id', id, 'prev', prev)
        if redis.call('LLEN', wait) > 0 or redis.call('ZCARD', prio) > 0 then
          redis.call('ZADD', marker, 0, '0')
        else
          emit('event', 'drained')
        end
        return {q + 1, id, '-1'}
      end
    end
  end
  local first = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
  if first[2] then wake_at(tonumber(first[2])) end
end
return {0, '', wake and string.format('%.6f', wake) or '-1'}
"""

FINISH = """
-- A job's run ended: trim its registry, count it in the metrics, publish its event. Runs as EVAL inside the
-- worker's own pipeline, so it costs no round trip. Metrics and events never fail the job (pcall).
-- KEYS: the finished or failed registry (scored by expiry time), the metrics hash, the events stream
-- ARGV: now, count to keep ('' for no limit), job key prefix, results key prefix, trim ('1' or '0'), this minute
--       (epoch minutes), minutes of metrics to keep (0: none), events max length (0: none), event field/values
-- Removes the expired registry entries and, past the count, the oldest ones, with their job hashes and results.
local removed = 0
if ARGV[5] == '1' then
  local function drop(id)
    redis.call('DEL', ARGV[3] .. id, ARGV[4] .. id)
    removed = removed + 1
  end
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, 1000)
  for _, id in ipairs(expired) do
    redis.call('ZREM', KEYS[1], id)
    drop(id)
  end
  local count = tonumber(ARGV[2])
  if count then
    local excess = redis.call('ZCARD', KEYS[1]) - count
    if excess > 0 then
      local popped = redis.call('ZPOPMIN', KEYS[1], excess)
      for i = 1, #popped, 2 do drop(popped[i]) end
    end
  end
end
local minutes = tonumber(ARGV[7])
if minutes > 0 then
  pcall(function()
    redis.call('HINCRBY', KEYS[2], ARGV[6], 1)
    redis.call('HINCRBY', KEYS[2], 'total', 1)
    -- Drop the minutes past the window once an hour's worth has piled up: memory stays bounded.
    if redis.call('HLEN', KEYS[2]) > minutes + 61 then
      local oldest = tonumber(ARGV[6]) - minutes
      for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
        local minute = tonumber(field)
        if minute and minute <= oldest then redis.call('HDEL', KEYS[2], field) end
      end
    end
  end)
end
local maxlen = tonumber(ARGV[8])
if maxlen > 0 then pcall(redis.call, 'XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, 9)) end
return removed
"""

PUBLISH = """
-- KEYS: an events stream. ARGV: max length, then the event's field/value pairs. Never raises (pcall).
local ok = pcall(redis.call, 'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
return ok and 1 or 0
"""

_SOURCES = {"add": ADD, "dequeue": DEQUEUE}  # FINISH and PUBLISH run inside pipelines, as EVAL
_scripts: dict[tuple[int, str], Script] = {}


def script(connection: redis.Redis, name: str) -> Script:
    """The named script of this module, registered once per client."""
    return registered(connection, _SOURCES[name])


def registered(connection: redis.Redis, source: str) -> Script:
    """The Lua ``source`` as a script of ``connection``, registered once per client (redis-py loads it on first
    use)."""
    key = (id(connection), source)
    found = _scripts.get(key)
    if found is None or found.registered_client is not connection:
        found = _scripts[key] = connection.register_script(source)
    return found


@dataclass(frozen=True)
class QueueKeys:
    wait: str
    prioritized: str
    scheduled: str
    marker: str
    priority_counter: str
    paused: str
    limiter: str
    rate_limited: str
    events: str
    metrics_completed: str
    metrics_failed: str
    backlog: str

    @classmethod
    def of(cls, name: str) -> QueueKeys:
        return cls(
            wait=f"rq:queue:{name}",
            prioritized=f"rq:prioritized:{name}",
            scheduled=f"rq:scheduled:{name}",
            marker=f"rq:marker:{name}",
            priority_counter=f"rq:prioritized-counter:{name}",
            paused=f"rq:paused:{name}",
            limiter=f"rq:limiter:{name}",
            rate_limited=f"rq:rate-limited:{name}",
            events=f"rq:events:{name}",
            metrics_completed=f"rq:metrics:{name}:completed",
            metrics_failed=f"rq:metrics:{name}:failed",
            backlog=f"rq:dashboard:backlog:{name}",
        )

    def for_dequeue(self) -> list[str]:
        return [self.wait, self.prioritized, self.scheduled, self.marker, self.priority_counter, self.paused,
                self.limiter, self.rate_limited, self.events]

    def for_add(self) -> list[str]:
        return [self.wait, self.prioritized, self.scheduled, self.marker, self.priority_counter, QUEUES_SET,
                self.events]


def hset_items(mapping: dict[str, Any]) -> list[Any]:
    """``HSET`` arguments for a job's fields, as RQ stores them (None left out)."""
    items: list[Any] = []
    for field, value in mapping.items():
        if value is not None:
            items.append(field)
            items.append(value if isinstance(value, bytes | str) else str(value))
    return items
