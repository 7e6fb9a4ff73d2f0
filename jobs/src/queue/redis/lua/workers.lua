-- Not a queue script (no prelude). The workers that report themselves:
-- KEYS the hash of worker id -> its report (JSON) and the sorted set of
-- worker id -> when its report lapses (µs, Redis clock). ARGV: 'report',
-- id, JSON, time to live (µs); 'remove', id; or 'list'. Every call first
-- forgets workers whose report lapsed (up to 1,000). 'list' returns the
-- reports (JSON) of the workers alive; the others return 1.
local K_WORKERS, K_LAPSES = KEYS[1], KEYS[2]
local ARG_OP, ARG_ID, ARG_JSON, ARG_TTL = 1, 2, 3, 4

-- Both keys are checked before the first write.
local function check(k, t)
  local kt = redis.call('TYPE', k)['ok']
  if kt ~= 'none' and kt ~= t then
    error({ err = 'WRONGTYPE ' .. k .. ' holds a ' .. kt .. ', not a ' .. t ..
      '; nothing was changed (delete the key)' })
  end
end
check(K_WORKERS, 'hash')
check(K_LAPSES, 'zset')
local op = ARGV[ARG_OP]
-- The arguments too: a bad one must fail before the lapsed are forgotten.
local ttl = op == 'report' and tonumber(ARGV[ARG_TTL])
if op == 'report' and not (ARGV[ARG_ID] and ARGV[ARG_JSON] and ttl) then
  error({ err = 'ERR a report needs an id, its JSON and a numeric time to live; nothing was changed' })
elseif op == 'remove' and not ARGV[ARG_ID] then
  error({ err = 'ERR a remove needs an id; nothing was changed' })
elseif op ~= 'report' and op ~= 'remove' and op ~= 'list' then
  error({ err = 'ERR unknown workers operation ' .. tostring(op) .. '; nothing was changed' })
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lapsed = redis.call('ZRANGEBYSCORE', K_LAPSES, '-inf', string.format('%d', now), 'LIMIT', 0, 1000)
if #lapsed > 0 then
  redis.call('HDEL', K_WORKERS, unpack(lapsed))
  redis.call('ZREM', K_LAPSES, unpack(lapsed))
end
if op == 'report' then
  local id = ARGV[ARG_ID]
  redis.call('HSET', K_WORKERS, id, ARGV[ARG_JSON])
  redis.call('ZADD', K_LAPSES, string.format('%d', now + ttl), id)
  return 1
elseif op == 'remove' then
  redis.call('HDEL', K_WORKERS, ARGV[ARG_ID])
  redis.call('ZREM', K_LAPSES, ARGV[ARG_ID])
  return 1
end
return redis.call('HVALS', K_WORKERS)
