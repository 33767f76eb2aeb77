-- addJob: write jobs and put each where workers take it, in one step (Queue.add and Queue.add_bulk).
--
-- KEYS: 1 wait list, 2 prioritized zset, 3 scheduled zset, 4 marker, 5 priority counter, 6 the rq:queues set,
--       7 events stream
-- ARGV: 1 the queue's key (for rq:queues), 2 job key prefix, 3 events max length, then 6 per job: id, mode ('w'
--       waiting, 'p' prioritized, 'd' delayed), score (the priority, or the due time), ttl (-1: none), name, and
--       the hash's field/value items as one MessagePack array (one argument instead of twenty-odd).
-- A job whose id exists already is left as it is (BullMQ's de-duplication by job id).
-- Returns, per job, 1 when it was added and 0 when it existed.
--- @include "emit"
--- @include "push_waiting"

local prefix, maxlen = ARGV[2], tonumber(ARGV[3])
local events = KEYS[7]
redis.call('SADD', KEYS[6], ARGV[1])
local out = {}
local added = false
local i = 4
while i <= #ARGV do
  local id, mode, score, ttl, name = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4]
  local key = prefix .. id
  if redis.call('EXISTS', key) == 1 then
    out[#out + 1] = 0
  else
    redis.call('HSET', key, unpack(cmsgpack.unpack(ARGV[i + 5])))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    emit(events, maxlen, 'added', 'job_id', id, 'name', name)
    if mode == 'w' then
      redis.call('RPUSH', KEYS[1], id)
      emit(events, maxlen, 'waiting', 'job_id', id)
    elseif mode == 'p' then
      push_prioritized(KEYS[2], KEYS[5], id, score)
      emit(events, maxlen, 'prioritized', 'job_id', id, 'priority', ARGV[i + 2])
    else
      redis.call('ZADD', KEYS[3], ARGV[i + 2], id)
      emit(events, maxlen, 'delayed', 'job_id', id, 'due', ARGV[i + 2])
    end
    out[#out + 1] = 1
    added = true
  end
  i = i + 6
end
if added then redis.call('ZADD', KEYS[4], 0, '0') end
return out
