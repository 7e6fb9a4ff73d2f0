-- Removes every job; returns how many there were. The sequence counter
-- stays, so leases handed out before stay stale.
local n = redis.call('HLEN', K_STATE)
redis.call('UNLINK', K_JOBS, K_STATE, K_READY, K_DELAYED, K_RUNNING, K_DONE, K_COUNTS)
return n
