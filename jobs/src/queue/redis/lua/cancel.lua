-- Cancels a waiting or running job. ARGV after the common ones: the id.
-- Returns '' if there is no such job, 'P' if a waiting job was cancelled,
-- 'R' if a running one was, else the final status it already had (a record
-- that does not parse is quarantined: 'F'). A workflow step's dependants
-- are resolved (cancelled, in cascade, unless they run always).
local ARG_ID = ARG_OWN

local id = ARGV[ARG_ID]
local v = read('HGET', K_STATE, id)
if not v then return '' end
local h = parse(v)
if h and final(h.s) then return h.s end
guard()
local now = now_us()
if not h then
  local fin = {}
  quarantine(id, v, K_STATE, why(v), now, fin)
  finished(fin, now)
  flush_counts()
  return 'F'
end
local was = h.s
local m = meta_of(id)
if was == 'R' then
  redis.call('ZREM', K_RUNNING, id)
  ran(m, -1)
else
  unwait(id, m)
end
if listen() then event('cancelled', id, read('HGET', K_JOBS, id)) end
count(h.s, -1)
count('X', 1)
h.s = 'X'
h.co = fmt(now)
redis.call('HSET', K_STATE, id, state(h))
local fin = { done_entry('X', id, h.co) }
if m and m.w then
  -- A workflow step: it waits no more, and its dependants are resolved.
  redis.call('HDEL', deps_key(), id)
  resolve(ended(id, m, h), now, fin)
end
finished(fin, now)
flush_counts()
flush_active()
publish()
if was == 'R' then
  -- Workers check their leases at once: the one running it stops it.
  redis.call('PUBLISH', CHANNEL, 'revoked')
  return 'R'
end
return 'P'
