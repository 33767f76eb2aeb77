-- moveStalledJobsToWait: jobs whose lock ran out (their worker died, froze or lost Redis for longer than the lock)
-- go back to the front of waiting without spending an attempt, or fail once they stalled too often.
--
-- KEYS: 1 active registry, 2 wait list, 3 prioritized zset, 4 priority counter, 5 marker, 6 events stream,
--       7 failed registry, 8 failed metrics, 9 the queue's stall-check lock, 10 the candidates set
-- ARGV: 1 now (seconds), 2 now (RQ's time text), 3 job key prefix, 4 results key prefix, 5 max stalled count,
--       6 at most this many jobs per call, 7 events max length, 8 the check lock's time (ms; '0': no lock, as for
--       a job process its worker saw die), 9 this worker's name, 10 this minute, 11 minutes of metrics to keep,
--       12 one member to stall now ('' for all whose lock ran out), 13 the reason a job fails with,
--       14 that reason as an RQ result (base64 of zlib)
-- Every state before the end (started, queued, scheduled: any a crash could leave) counts as stalled; an entry
-- whose job ended or is gone is a leftover and only leaves the registry.
-- Two checks, as BullMQ's: a lock found out of date becomes a candidate; only a candidate whose lock is still out of
-- date at the next check (one stall-check lock later, a third of stalled_interval) stalls. Its worker has had an
-- extension's time in between: after Redis was away for everyone (restarted, stopped), a running job's lock ran
-- out through no fault of its worker, which extends it again as soon as Redis answers.
-- Returns {job id, stall count, 1 if it failed, ...} for the jobs it moved.
--- @include "emit"
--- @include "push_waiting"
--- @include "trim"

local now, now_text, prefix, results_prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local max_stalled, maxlen = tonumber(ARGV[5]), tonumber(ARGV[7])
local events = KEYS[6]
if ARGV[8] ~= '0' and not redis.call('SET', KEYS[9], ARGV[9], 'NX', 'PX', ARGV[8]) then return {} end
local members
if ARGV[12] ~= '' then
  members = {ARGV[12]}
else
  members = {}
  local candidates, stalling = KEYS[10], {}
  for _, member in ipairs(redis.call('SMEMBERS', candidates)) do
    local score = redis.call('ZSCORE', KEYS[1], member)
    if score and tonumber(score) <= now then
      members[#members + 1] = member
      stalling[member] = true
    end
  end
  redis.call('DEL', candidates)  -- the others were extended since, or ended
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))) do
    if not stalling[member] then redis.call('SADD', candidates, member) end
  end
  redis.call('PEXPIRE', candidates, math.max(tonumber(ARGV[8]) * 30, 1000))
end
local ended = {finished = true, failed = true, stopped = true, canceled = true}
local moved = {}
for _, member in ipairs(members) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local id = string.match(member, '^(.*):[^:]*$') or member
    local key = prefix .. id
    local f = redis.call('HMGET', key, 'status', 'priority', 'failure_ttl', 'retry_intervals', 'retries_left')
    if f[1] and not ended[f[1]] then
      local stalls = redis.call('HINCRBY', key, 'stalled_count', 1)
      local failed = stalls > max_stalled
      emit(events, maxlen, 'stalled', 'job_id', id, 'stalled_count', stalls, 'failed', failed and 1 or 0)
      if failed then
        local ttl = tonumber(f[3] or '-1') or -1
        local made = 1
        local ok, intervals = pcall(cjson.decode, f[4] or '')
        if ok and type(intervals) == 'table' then made = #intervals - (tonumber(f[5] or '0') or 0) + 1 end
        if ttl == 0 then
          redis.call('DEL', key, results_prefix .. id)
        else
          redis.call('HSET', key, 'status', 'failed', 'ended_at', now_text, 'exc_info', ARGV[13])
          redis.call('XADD', results_prefix .. id, 'MAXLEN', '10', '*', 'type', '2', 'exc_string', ARGV[14])
          if ttl > 0 then
            redis.call('EXPIRE', key, ttl)
            redis.call('EXPIRE', results_prefix .. id, ttl)
            redis.call('ZADD', KEYS[7], string.format('%.6f', now + ttl), id)
          else
            redis.call('ZADD', KEYS[7], '+inf', id)
          end
        end
        count(KEYS[8], ARGV[10], tonumber(ARGV[11]))
        emit(events, maxlen, 'failed', 'job_id', id, 'failed_reason', ARGV[13], 'attempts_made', made,
             'prev', 'active')
      else
        redis.call('HSET', key, 'status', 'queued', 'enqueued_at', now_text)
        local state = push_waiting(KEYS[2], KEYS[3], KEYS[4], id, tonumber(f[2] or '0') or 0, true)
        redis.call('ZADD', KEYS[5], 0, '0')
        emit(events, maxlen, state, 'job_id', id, 'prev', 'active')
      end
      moved[#moved + 1] = id
      moved[#moved + 1] = stalls
      moved[#moved + 1] = failed and 1 or 0
    end
  end
end
return moved
