-- Removes every job, whatever its keys hold (a way out for an operator
-- after a key was replaced by hand); returns how many jobs there were. The
-- sequence counter stays, so leases handed out before stay stale.
local n = redis.pcall('HLEN', K_STATE)
if type(n) ~= 'number' then n = 0 end
redis.call('UNLINK', K_JOBS, K_STATE, K_READY, K_DELAYED, K_RUNNING, K_DONE, K_COUNTS)
return n
