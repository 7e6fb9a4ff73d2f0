-- Puts a finished job back as a fresh waiting one, if its state is still
-- the one the client read. ARGV after the common ones: id, expected state,
-- new state, new JSON, due (us), rank. Returns 'ok', 'gone' or 'changed'.
local ARG_ID, ARG_EXPECTED, ARG_STATE, ARG_JSON, ARG_DUE, ARG_RANK =
  ARG_OWN, ARG_OWN + 1, ARG_OWN + 2, ARG_OWN + 3, ARG_OWN + 4, ARG_OWN + 5

local id = ARGV[ARG_ID]
local v = read('HGET', K_STATE, id)
if not v then return 'gone' end
if v ~= ARGV[ARG_EXPECTED] then return 'changed' end
local h = parse(v)
if not h or not final(h.s) then return 'changed' end
local m = meta_of(id)
guard()
redis.call('LREM', K_DONE, 1, done_entry(h.s, id, h.co))
redis.call('HSET', K_STATE, id, ARGV[ARG_STATE])
redis.call('HSET', K_JOBS, id, ARGV[ARG_JSON])
count(h.s, -1)
count('P', 1)
if m and m.w then
  -- Its workflow counts it as not finished again.
  local wk = wf_key(m.w[1])
  local f = wf_field(h.s)
  if f and redis.call('EXISTS', wk) == 1 then
    if tonumber(redis.call('HGET', wk, f) or '0') > 0 then redis.call('HINCRBY', wk, f, -1) end
    redis.call('HINCRBY', wk, 'pending', 1)
  end
end
place(id, tonumber(ARGV[ARG_DUE]), ARGV[ARG_RANK], now_us(), qname(m))
flush_counts()
publish()
return 'ok'
