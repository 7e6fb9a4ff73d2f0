-- Hands held jobs back to the head of their priority, in the given order,
-- the attempt not counted. ARGV after the common ones: LEASE_WIDTH values
-- per lease: id, token. Returns how many were handed back.
local ARG_LEASES = ARG_OWN
local LEASE_ID, LEASE_TOKEN, LEASE_WIDTH = 0, 1, 2

local ids = {}
for i = ARG_LEASES, #ARGV, LEASE_WIDTH do ids[#ids + 1] = ARGV[i + LEASE_ID] end
local states = read('HMGET', K_STATE, unpack(ids))
local ms = metas(ids)
local bodies = {}
if listen() then bodies = read('HMGET', K_JOBS, unpack(ids)) end
guard()
local n = 0
local seq = redis.call('INCRBY', K_SEQ, #ids) - #ids
-- Backwards, each to the front: they end up in the given order.
for k = #ids, 1, -1 do
  local id = ids[k]
  local h = parse(states[k])
  seq = seq + 1
  if h and h.s == 'R' and h.t == ARGV[ARG_LEASES + LEASE_WIDTH * (k - 1) + LEASE_TOKEN] then
    redis.call('ZREM', K_RUNNING, id)
    local a = num(h.a)
    if a > 1 then h.s = 'T' else h.s = 'P' end
    if a > 0 then h.a = fmt(a - 1) end
    h.st = ''
    count('R', -1)
    count(h.s, 1)
    redis.call('HSET', K_STATE, id, state(h))
    redis.call('ZADD', ready_key(qname(ms[k])), front(h.r, seq), id)
    ran(ms[k], -1)
    if listening then event('released', id, bodies[k]) end
    n = n + 1
  end
end
flush_counts()
flush_active()
if n > 0 then woke(0) end
publish()
return n
