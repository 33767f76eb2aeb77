-- trim(registry, now, keep, prefix, results_prefix): retention of the completed or failed registry, bounded per
-- call (TRIM_LIMIT jobs each for age and count; what is left goes at the next finish). Entries are scored by
-- their expiry: the expired ones go, then, past `keep` (a number, or nil for no limit), the oldest ones, each
-- with its job hash and results.
local TRIM_LIMIT = 100

local function trim(registry, now, keep, prefix, results_prefix, by_age)
  if by_age then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', registry, 0, now, 'LIMIT', 0, TRIM_LIMIT)) do
      redis.call('ZREM', registry, id)
      redis.call('DEL', prefix .. id, results_prefix .. id)
    end
  end
  if keep then
    local excess = redis.call('ZCARD', registry) - keep
    if excess > 0 then
      local popped = redis.call('ZPOPMIN', registry, math.min(excess, TRIM_LIMIT))
      for i = 1, #popped, 2 do redis.call('DEL', prefix .. popped[i], results_prefix .. popped[i]) end
    end
  end
end

-- count(metrics, minute, keep_minutes): one more job in this minute's bucket and in the total; the buckets past
-- the window are dropped once an hour's worth has piled up, so the hash stays bounded. Never fails the caller.
local function count(metrics, minute, keep_minutes)
  if keep_minutes <= 0 then return end
  pcall(function()
    redis.call('HINCRBY', metrics, minute, 1)
    redis.call('HINCRBY', metrics, 'total', 1)
    if redis.call('HLEN', metrics) > keep_minutes + 61 then
      local oldest = tonumber(minute) - keep_minutes
      for _, field in ipairs(redis.call('HKEYS', metrics)) do
        local m = tonumber(field)
        if m and m <= oldest then redis.call('HDEL', metrics, field) end
      end
    end
  end)
end
