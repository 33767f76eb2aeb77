-- emit(stream, maxlen, event, field, value, ...): append one event to a queue's capped stream.
-- maxlen 0 publishes nothing; a Redis-side error (the key holds another type) never fails the caller.
local function emit(stream, maxlen, event, ...)
  if maxlen > 0 then pcall(redis.call, 'XADD', stream, 'MAXLEN', '~', maxlen, '*', 'event', event, ...) end
end
