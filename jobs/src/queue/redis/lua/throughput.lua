-- The attempts counted per minute (see `count_attempts` in the prelude).
-- ARGV after the common ones: how many minutes, the current one included.
-- Returns the current minute (since the epoch, on the Redis clock), then
-- the packed count of each minute back from it ('' for none).
local ARG_MINUTES = ARG_OWN

local n = tonumber(ARGV[ARG_MINUTES])
local minute = math.floor(now_us() / 60000000)
local out = { fmt(minute) }
local keys = {}
for i = 0, n - 1 do keys[#keys + 1] = PREFIX .. 'stat:' .. fmt(minute - i) end
for i = 1, #keys, 1000 do
  -- MGET gives nil for a key that is not a string.
  local values = redis.call('MGET', unpack(keys, i, math.min(i + 999, #keys)))
  for j = 1, math.min(1000, #keys - i + 1) do out[#out + 1] = values[j] or '' end
end
return out
