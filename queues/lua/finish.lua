-- moveToFinished: a run ended; record its outcome under the job's lock, then (optionally) take the next job in
-- the same call, so a busy worker spends one round trip per job.
--
-- KEYS: 1 active registry (rq:wip), 2 completed registry, 3 failed registry, 4 completed metrics, 5 failed metrics,
--       6 events stream, 7 wait list, 8 prioritized zset, 9 scheduled zset, 10 marker, 11 priority counter,
--       then, to take the next job, the keys of includes/take.lua from 12 on.
-- ARGV: 1 job id, 2 lock token, 3 outcome: 'completed' | 'failed' | 'retry' | 'requeue', 4 now (seconds),
--       5 now (RQ's time text), 6 job key prefix, 7 results key prefix, 8 ttl of the outcome (-1 keep, 0 remove
--       at once, else seconds), 9 completed/failed jobs to keep ('' no limit), 10 this minute (epoch minutes),
--       11 minutes of metrics to keep, 12 events max length, 13 due time of a retry (seconds),
--       14 the number H of hash field/value items, 15 the number R of result field/value items,
--       16 the number E of event field/value items, then the H, R and E items, then the ARGV of
--       includes/take.lua when KEYS go past 11.
--
-- The lock: the member '<job id>:<token>' in the active registry. Without it (the job stalled and was given
-- to another worker, or was removed), nothing of the job is written: returns {-1, ...} ("Missing lock").
-- 'retry' goes to the scheduled registry (or straight back to waiting when due now); 'requeue' (stopped at
-- the end of the shutdown grace) goes to the front of waiting, its attempts untouched.
-- Returns {1 | -1, then the reply of take(), or nothing}.
--- @include "emit"
--- @include "push_waiting"
--- @include "trim"
--- @include "take"

local id, token, outcome = ARGV[1], ARGV[2], ARGV[3]
local now, now_text, prefix, results_prefix = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local ttl, keep, maxlen = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[12])
local h, r, e = tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local hash_at, result_at, event_at = 17, 17 + h, 17 + h + r
local events = KEYS[6]
local key, results = prefix .. id, results_prefix .. id
local status = 1

if redis.call('ZREM', KEYS[1], id .. ':' .. token) == 0 then
  status = -1
elseif outcome == 'completed' or outcome == 'failed' then
  local registry, metrics = KEYS[2], KEYS[4]
  if outcome == 'failed' then registry, metrics = KEYS[3], KEYS[5] end
  if ttl == 0 then
    redis.call('DEL', key, results)
  else
    redis.call('HSET', key, 'status', outcome == 'completed' and 'finished' or 'failed', 'ended_at', now_text,
               unpack(ARGV, hash_at, hash_at + h - 1))
    if r > 0 then redis.call('XADD', results, 'MAXLEN', '10', '*', unpack(ARGV, result_at, result_at + r - 1)) end
    if ttl > 0 then
      redis.call('EXPIRE', key, ttl)
      if r > 0 then redis.call('EXPIRE', results, ttl) end
      redis.call('ZADD', registry, string.format('%.6f', now + ttl), id)
    else
      redis.call('ZADD', registry, '+inf', id)
    end
    if ttl > 0 or keep then trim(registry, now, keep, prefix, results_prefix, ttl > 0) end
  end
  count(metrics, ARGV[10], tonumber(ARGV[11]))
  emit(events, maxlen, outcome, 'job_id', id, unpack(ARGV, event_at, event_at + e - 1))
elseif outcome == 'retry' then
  local due = tonumber(ARGV[13])
  if r > 0 then redis.call('XADD', results, 'MAXLEN', '10', '*', unpack(ARGV, result_at, result_at + r - 1)) end
  if due > now then
    redis.call('HSET', key, 'status', 'scheduled', unpack(ARGV, hash_at, hash_at + h - 1))
    redis.call('ZADD', KEYS[9], ARGV[13], id)
    redis.call('ZADD', KEYS[10], 0, '0')  -- idle workers look again for the earliest due time
  else
    redis.call('HSET', key, 'status', 'queued', 'enqueued_at', now_text, unpack(ARGV, hash_at, hash_at + h - 1))
    local priority = tonumber(redis.call('HGET', key, 'priority') or '0') or 0
    push_waiting(KEYS[7], KEYS[8], KEYS[11], id, priority, false)
    redis.call('ZADD', KEYS[10], 0, '0')
  end
  emit(events, maxlen, 'retrying', 'job_id', id, unpack(ARGV, event_at, event_at + e - 1))
elseif outcome == 'requeue' then
  redis.call('HSET', key, 'status', 'queued', 'enqueued_at', now_text)
  local priority = tonumber(redis.call('HGET', key, 'priority') or '0') or 0
  local state = push_waiting(KEYS[7], KEYS[8], KEYS[11], id, priority, true)
  redis.call('ZADD', KEYS[10], 0, '0')
  emit(events, maxlen, state, 'job_id', id, 'prev', 'active')
end

if #KEYS > 11 then return {status, take(12, 17 + h + r + e)} end
return {status}
