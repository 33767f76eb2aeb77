-- extendLock: keep the locks of a worker's running jobs. KEYS: the active registry of each job (repeated as
-- needed); ARGV: 1 the new expiry (seconds), then the members '<job id>:<token>' in the order of KEYS.
-- A lock that is gone (the job stalled and went to another worker, or was removed) is not made again.
-- Returns, for each job, 1 when its lock was extended, 0 when it is lost.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZADD', KEYS[i], 'XX', 'CH', ARGV[1], ARGV[i + 1])
end
return out
