-- The priority score, stated once: (priority - 1) * 2^32 + counter. Lower runs first and the counter keeps
-- FIFO within one priority; `priority - 1` keeps every score below 2^53, where a double still counts in ones.
local function push_prioritized(prioritized, counter, id, priority)
  local c = redis.call('INCR', counter) % 4294967296
  redis.call('ZADD', prioritized, string.format('%.0f', (priority - 1) * 4294967296 + c), id)
end

-- Put a job where workers take it: its priority band when it has a priority, else the waiting list (at the
-- front when `front`). Returns the state it is now in: 'prioritized' or 'waiting'.
local function push_waiting(wait, prioritized, counter, id, priority, front)
  if priority > 0 then
    push_prioritized(prioritized, counter, id, priority)
    return 'prioritized'
  end
  redis.call(front and 'LPUSH' or 'RPUSH', wait, id)
  return 'waiting'
end
