-- Job schedulers (BullMQ's upsertJobScheduler / removeJobScheduler and the step a worker takes when it starts a
-- scheduler's run): a scheduler is a hash, its next run a delayed job whose id names the scheduler and the tick.
--
-- KEYS: 1 the queue's schedulers zset (id -> next tick, '+inf' once it has ended), 2 the scheduler's hash,
--       3 wait list, 4 prioritized zset, 5 scheduled zset, 6 marker, 7 priority counter, 8 the rq:queues set,
--       9 events stream
-- ARGV: 1 op: 'upsert' | 'advance' | 'repair' | 'remove' | 'ran', 2 scheduler id, 3 expected (upsert: the
--       digest read before, '' for none; advance and repair: the pending run's id), 4 the next tick (seconds;
--       '' when the scheduler has no next run), 5 job key prefix, 6 the queue's key (for rq:queues),
--       7 events max length, 8 the next run's job id, 9 the job's name, 10 its hash items as one MessagePack
--       array, 11 now in milliseconds, 12 the new digest (upsert), then (upsert) the hash's field/value items.
--
-- The hash's 'pending' field names the one run the scheduler has waiting: every op compares it before writing,
-- so two workers starting the same run, or an upsert racing a run, never leave two next runs.
-- Returns 1 when it wrote, 0 when there was nothing to do, -1 (upsert) when the hash changed since it was read.
--- @include "emit"

local op, id, expected, nxt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local schedulers, hash = KEYS[1], KEYS[2]
local wait, prioritized, scheduled, marker, events = KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[9]
local prefix, maxlen, now_ms = ARGV[5], tonumber(ARGV[7]), ARGV[11]

-- The pending run, while it has not started, is taken out of every structure a worker takes jobs from.
local function drop_pending()
  local run = redis.call('HGET', hash, 'pending')
  if not run or run == '' then return end
  local key = prefix .. run
  local status = redis.call('HGET', key, 'status')
  if status == 'scheduled' or status == 'queued' then
    redis.call('ZREM', scheduled, run)
    redis.call('LREM', wait, 0, run)
    redis.call('ZREM', prioritized, run)
    redis.call('DEL', key)
    emit(events, maxlen, 'removed', 'job_id', run, 'prev', status == 'scheduled' and 'delayed' or 'waiting')
  end
end

-- Add the next run (a delayed job due at the tick; a job with that id already there is left as it is) and
-- point the scheduler at it; no tick: the scheduler has ended (its limit or end date) and stays listed.
local function add_next()
  if nxt == '' then
    redis.call('HSET', hash, 'next', '', 'pending', '')
    redis.call('ZADD', schedulers, '+inf', id)
    return
  end
  local run = ARGV[8]
  local key = prefix .. run
  redis.call('SADD', KEYS[8], ARGV[6])
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, unpack(cmsgpack.unpack(ARGV[10])))
    redis.call('ZADD', scheduled, nxt, run)
    redis.call('ZADD', marker, 0, '0')  -- an idle worker looks again for the earliest due time
    emit(events, maxlen, 'added', 'job_id', run, 'name', ARGV[9])
    emit(events, maxlen, 'delayed', 'job_id', run, 'due', nxt)
  end
  redis.call('HSET', hash, 'next', nxt, 'pending', run)
  redis.call('ZADD', schedulers, nxt, id)
end

if op == 'upsert' then
  local digest = redis.call('HGET', hash, 'digest') or ''
  if digest == ARGV[12] then return 0 end
  if digest ~= expected then return -1 end
  drop_pending()
  local kept = redis.call('HMGET', hash, 'iteration_count', 'last')
  redis.call('DEL', hash)
  redis.call('HSET', hash, 'iteration_count', kept[1] or '0', 'last', kept[2] or '', unpack(ARGV, 13))
  add_next()
  emit(events, maxlen, 'scheduler-upserted', 'scheduler_id', id)
  return 1
elseif op == 'remove' then
  if redis.call('EXISTS', hash) == 0 then return 0 end
  drop_pending()
  redis.call('DEL', hash)
  redis.call('ZREM', schedulers, id)
  emit(events, maxlen, 'scheduler-removed', 'scheduler_id', id)
  return 1
elseif op == 'ran' then  -- a run added by "run now" started: only the time of the last run moves
  if redis.call('EXISTS', hash) == 0 then return 0 end
  redis.call('HSET', hash, 'last', now_ms)
  return 1
end

-- advance (a worker started the pending run) and repair (the pending run is gone or ended without advancing)
if redis.call('HGET', hash, 'pending') ~= expected or expected == '' then return 0 end
if op == 'advance' then
  redis.call('HINCRBY', hash, 'iteration_count', 1)
  redis.call('HSET', hash, 'last', now_ms)
else
  local status = redis.call('HGET', prefix .. expected, 'status')
  if status and status ~= 'finished' and status ~= 'failed' and status ~= 'stopped' and status ~= 'canceled' then
    return 0  -- still waiting or running: nothing to repair
  end
end
add_next()
return 1
