-- Deletes a job that is not running, as if it never existed: out of the
-- index it is in (a waiting job out of its queue's ready set, delayed or
-- its limit key's held set; a finished one out of the retention list),
-- its unique lock freed if it holds it, its records and its count gone.
-- ARGV after the common ones: the id. Returns 'D' (deleted), 'R' (running:
-- left alone) or '' (no such job). A workflow step that had not finished
-- is resolved as cancelled for the steps waiting for it.
local ARG_ID = ARG_OWN

local id = ARGV[ARG_ID]
local v = read('HGET', K_STATE, id)
if not v and read('HEXISTS', K_JOBS, id) == 0 then return '' end
local h = parse(v)
if h and h.s == 'R' then return 'R' end
local m = meta_of(id)
local lock = nil
if m and m.u then lock = read('HGET', K_UNIQUE, m.u[1]) end
-- The held sets `unwait` writes, checked before the first write.
if m and m.c then touch(held_key(m.c[1]), 'zset') end
if m and m.r then touch(rheld_key(m.r[1]), 'zset') end
guard()
if h and final(h.s) then
  redis.call('LREM', K_DONE, 1, done_entry(h.s, id, h.co))
  count(h.s, -1)
elseif h then
  unwait(id, m)
  count(h.s, -1)
else
  -- A state that does not parse (or none, beside JSON): it may be in any
  -- index, and was not counted as what it says.
  unwait(id, m)
  redis.call('ZREM', K_RUNNING, id)
  dirty = true
end
if lock and string.sub(lock, 1, #id + 1) == id .. '|' then
  redis.call('HDEL', K_UNIQUE, m.u[1])
end
if m and m.w then
  -- A workflow step: its dependants see it as cancelled if it had not
  -- finished; its dependency state and results go.
  if h and not final(h.s) then
    local now = now_us()
    local fin = {}
    h.s = 'X'
    resolve(ended(id, m, h), now, fin)
    if #fin > 0 then finished(fin, now) end
  end
  forget_step(id, m)
end
redis.call('HDEL', K_STATE, id)
redis.call('HDEL', K_JOBS, id)
if m then redis.call('HDEL', K_META, id) end
flush_counts()
publish()
return 'D'
