-- Apply a queue's retention to its completed or failed registry at once (the scheduled cleanup): the finish
-- script trims as jobs end, at most TRIM_LIMIT per call, so a burst can leave more behind, and entries whose
-- job hash expired (an age limit) stay listed until trimmed.
--
-- KEYS: 1 the registry (completed or failed). ARGV: 1 now (seconds), 2 jobs to keep ('' no limit),
--       3 job key prefix, 4 results key prefix.
-- Returns how many entries went (at most 2 * TRIM_LIMIT per call: call again while it returns more than 0).
--- @include "trim"

local before = redis.call('ZCARD', KEYS[1])
trim(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], true)
return before - redis.call('ZCARD', KEYS[1])
