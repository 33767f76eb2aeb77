-- take(k, a): move the next job of the worker's queues to active, under a lock (BullMQ's moveToActive).
--
-- KEYS from k on, TAKE_KEYS per queue in the worker's order:
--   wait list, prioritized zset, scheduled zset, marker zset, priority counter, paused flag,
--   limiter window (zset of start times), manual rate-limit flag, events stream, active registry (rq:wip)
-- ARGV from a on: now (seconds), now (RQ's time text), job key prefix, promote limit, events max length,
--   lock token, lock expiry (seconds), worker name, reclaim ('1': a call with this token may have run already),
--   then per queue: limiter max (0: none), limiter window (seconds)
--
-- Per queue: due delayed jobs (and retries) are promoted first; a paused queue, a manual rate limit or a full
-- limiter window is skipped; then a job without a priority, else the best prioritized one, goes to the active
-- registry as the member '<job id>:<lock token>' scored by the lock's expiry, in the same step that pops it: a
-- taken job is always in exactly one structure. Its hash is returned, read before the status is set.
-- Returns {queue number (1-based), job id, {hash field, value, ...}} or {0, '', wake time or '-1'}.
local TAKE_KEYS = 10

local function take(k, a)
  local now, now_text, prefix = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local promote_limit, maxlen = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local token, lock_until, worker, reclaim = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local queues = (#KEYS - k + 1) / TAKE_KEYS
  if reclaim == '1' then
    -- The reply to a call with this token was lost and the call is sent again: if it ran, its job is active
    -- under this token. Hand that job back instead of taking a second one (active registries are small).
    local suffix = ':' .. token
    for q = 0, queues - 1 do
      for _, member in ipairs(redis.call('ZRANGE', KEYS[k + q * TAKE_KEYS + 9], 0, -1)) do
        if string.sub(member, -#suffix) == suffix then
          local id = string.sub(member, 1, #member - #suffix)
          return {q + 1, id, redis.call('HGETALL', prefix .. id)}
        end
      end
    end
  end
  local wake = nil
  for q = 0, queues - 1 do
    local b = k + q * TAKE_KEYS
    local wait, prioritized, scheduled, marker, counter = KEYS[b], KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
    local paused, window, limited, events, active = KEYS[b + 5], KEYS[b + 6], KEYS[b + 7], KEYS[b + 8], KEYS[b + 9]
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, promote_limit)) do
      redis.call('ZREM', scheduled, id)
      local key = prefix .. id
      local found = redis.call('HMGET', key, 'status', 'priority')
      if found[1] then
        local state = push_waiting(wait, prioritized, counter, id, tonumber(found[2] or '0') or 0, false)
        redis.call('HSET', key, 'status', 'queued', 'enqueued_at', now_text)
        emit(events, maxlen, state, 'job_id', id, 'prev', 'delayed')
      end
    end
    local flags = redis.call('MGET', paused, limited)  -- one read for the pause and the manual rate limit
    if not flags[1] then
      local limit_max, limit_for = tonumber(ARGV[a + 9 + q * 2]), tonumber(ARGV[a + 10 + q * 2])
      local hold = nil
      if flags[2] then
        local manual = redis.call('PTTL', limited)
        if manual > 0 then hold = now + manual / 1000 end
      end
      if hold == nil and limit_max > 0 then
        redis.call('ZREMRANGEBYSCORE', window, '-inf', now - limit_for)
        if redis.call('ZCARD', window) >= limit_max then
          hold = tonumber(redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')[2]) + limit_for
        end
      end
      if hold ~= nil then
        if redis.call('LLEN', wait) > 0 or redis.call('ZCARD', prioritized) > 0 then
          if wake == nil or hold < wake then wake = hold end
        end
      else
        while true do
          local id = redis.call('LPOP', wait)
          local prev = 'waiting'
          if not id then
            id = redis.call('ZPOPMIN', prioritized)[1]
            prev = 'prioritized'
          end
          if not id then break end
          local key = prefix .. id
          local job = redis.call('HGETALL', key)
          if #job > 0 then  -- else the job was removed while it waited: take the next one
            redis.call('ZADD', active, lock_until, id .. ':' .. token)
            redis.call('HSET', key, 'status', 'started', 'started_at', now_text, 'worker_name', worker,
                       'last_heartbeat', now_text)
            if limit_max > 0 then
              redis.call('ZADD', window, now, id .. ':' .. token)  -- this take's own entry
              redis.call('PEXPIRE', window, math.ceil(limit_for * 1000) + 1000)
            end
            emit(events, maxlen, 'active', 'job_id', id, 'prev', prev)
            if (prev == 'waiting' and redis.call('LLEN', wait) > 0) or redis.call('ZCARD', prioritized) > 0 then
              redis.call('ZADD', marker, 0, '0')  -- more wait: wake the next idle worker
            else
              emit(events, maxlen, 'drained')
            end
            return {q + 1, id, job}
          end
        end
      end
    end
    local first = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
    if first[2] then
      local at = tonumber(first[2])
      if wake == nil or at < wake then wake = at end
    end
  end
  return {0, '', wake and string.format('%.6f', wake) or '-1'}
end
