-- moveToActive: take the next job of the worker's queues (see includes/take.lua for KEYS and ARGV).
--- @include "emit"
--- @include "push_waiting"
--- @include "take"
return take(1, 1)
