-- Deletes the jobs of one status, as delete.lua deletes one, a chunk per
-- call so that a large purge does not hold Redis for long; the caller
-- calls again with the cursor returned until it is ''. Finished jobs are
-- found in the retention list (the cursor: the index to go on from),
-- waiting ones by a scan of the states (the cursor: HSCAN's). ARGV after
-- the common ones: the status letter (not R), the cursor ('0' to begin),
-- the chunk size. Returns {how many were deleted, the next cursor}.
local ARG_STATUS, ARG_CURSOR, ARG_CHUNK = ARG_OWN, ARG_OWN + 1, ARG_OWN + 2

local want, cursor, chunk = ARGV[ARG_STATUS], ARGV[ARG_CURSOR], tonumber(ARGV[ARG_CHUNK])
-- Marks the retention entries to delete (no entry starts with it).
local GONE = '-'
local ids, at = {}, {}
local nextc
if final(want) then
  local from = tonumber(cursor)
  local entries = read('LRANGE', K_DONE, from, from + chunk - 1)
  for i, e in ipairs(entries) do
    if string.sub(e, 1, 1) == want then
      ids[#ids + 1] = string.match(e, '^.([^|]*)')
      at[#ids] = from + i - 1
    end
  end
  nextc = from + #entries
  if #entries < chunk then nextc = nil end
else
  local page = read('HSCAN', K_STATE, cursor, 'COUNT', chunk)
  local kv = page[2]
  for i = 1, #kv, 2 do
    if header(kv[i + 1]) == want then ids[#ids + 1] = kv[i] end
  end
  nextc = page[1]
  if nextc == '0' then nextc = nil end
end
local states = {}
if #ids > 0 then states = read('HMGET', K_STATE, unpack(ids)) end
local ms = metas(ids)
local locks = {}
for i = 1, #ids do
  local m = ms[i]
  if m and m.u then locks[i] = read('HGET', K_UNIQUE, m.u[1]) end
  if m and m.c then touch(held_key(m.c[1]), 'zset') end
  if m and m.r then touch(rheld_key(m.r[1]), 'zset') end
end
guard()
local gone, n = {}, 0
-- Whether a workflow step's end changed other jobs of this chunk.
local resolved = false
local fin = {}
local now = nil
for i, id in ipairs(ids) do
  local v = states[i]
  if resolved then v = redis.call('HGET', K_STATE, id) end
  -- Only a job still of that status (a stale retention entry stays).
  if header(v) == want then
    local m = ms[i]
    if m and m.w then
      -- As delete.lua: the steps waiting for it see it cancelled.
      if not final(want) then
        local h = parse(v)
        h.s = 'X'
        now = now or now_us()
        resolve(ended(id, m, h), now, fin)
        resolved = true
      end
      forget_step(id, m)
    end
    if at[i] then
      redis.call('LSET', K_DONE, at[i], GONE)
    else
      unwait(id, m)
    end
    local lock = locks[i]
    if lock and string.sub(lock, 1, #id + 1) == id .. '|' then
      redis.call('HDEL', K_UNIQUE, m.u[1])
    end
    gone[#gone + 1] = id
    n = n + 1
  end
end
if n > 0 then
  if final(want) then
    redis.call('LREM', K_DONE, 0, GONE)
    -- The entries removed before the cursor moved those after it up.
    if nextc then nextc = nextc - n end
  end
  variadic('HDEL', K_STATE, gone)
  variadic('HDEL', K_JOBS, gone)
  if any_meta() then variadic('HDEL', K_META, gone) end
  count(want, -n)
end
if #fin > 0 then finished(fin, now) end
flush_counts()
publish()
if nextc == nil then return { n, '' } end
return { n, tostring(nextc) }
