-- Not a queue script (no prelude). KEYS: the last-run hash. ARGV: task,
-- occurrence (ms). Keeps the later time.
local K_LAST_RUN = KEYS[1]
local ARG_TASK, ARG_OCCURRENCE = 1, 2

local old = tonumber(redis.call('HGET', K_LAST_RUN, ARGV[ARG_TASK]) or '')
if old == nil or tonumber(ARGV[ARG_OCCURRENCE]) > old then
  redis.call('HSET', K_LAST_RUN, ARGV[ARG_TASK], ARGV[ARG_OCCURRENCE])
end
return 1
