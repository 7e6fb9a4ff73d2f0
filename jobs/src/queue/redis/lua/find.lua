-- One page of jobs matching a filter, newest first (by created_at, then
-- id), read from the indexes in one consistent snapshot. ARGV after the
-- common ones: the status letter ('' any), the name ('' any), the named
-- queue ('' any), offset, limit, and how many entries beyond the first
-- offset + limit + 1 matches each index may be looked at (the scan bound).
-- Returns '1' if more jobs match after the page, else '0', then id, state,
-- JSON of each job of the page.
--
-- The candidates are the first offset + limit + 1 matching jobs of each
-- index in its own order: the ready set of each queue per priority band
-- (last ready first), the held sets, delayed (latest due first), running,
-- and the retention list (last finished first). A filter that rejects
-- entries makes an index be read further, in chunks, up to the scan
-- bound; the name filter reads each entry's JSON for it.
local ARG_STATUS, ARG_NAME, ARG_QUEUE, ARG_OFFSET, ARG_LIMIT, ARG_SCAN =
  ARG_OWN, ARG_OWN + 1, ARG_OWN + 2, ARG_OWN + 3, ARG_OWN + 4, ARG_OWN + 5

local status, name, queue = ARGV[ARG_STATUS], ARGV[ARG_NAME], ARGV[ARG_QUEUE]
local offset, limit = tonumber(ARGV[ARG_OFFSET]), tonumber(ARGV[ARG_LIMIT])
local want = offset + limit + 1
local bound = want + tonumber(ARGV[ARG_SCAN])

-- created_at from a job's JSON (serialised third, after id and name), as
-- text that sorts in time order: the fraction of a second padded to nine
-- digits.
local function created(body)
  local c = match(body, '^{"id":"[^"]*","name":"[^"\\]*","created_at":"([^"]*)"')
  if not c then
    local ok, j = pcall(cjson.decode, body)
    if ok and type(j) == 'table' and type(j.created_at) == 'string' then c = j.created_at else c = '' end
  end
  local whole, frac = match(c, '^([^.Z]*)%.?(%d*)Z$')
  if not whole then return c end
  return whole .. '.' .. frac .. string.rep('0', 9 - #frac)
end

local found, seen = {}, {}
-- Adds the jobs of `ids` that match; returns how many did.
local function consider(ids)
  if #ids == 0 then return 0 end
  local states = read('HMGET', K_STATE, unpack(ids))
  local ms = {}
  if queue ~= '' then ms = metas(ids) end
  local pass, pstates = {}, {}
  for i, id in ipairs(ids) do
    local v = states[i]
    if v and not seen[id] and (status == '' or string.sub(v, 1, 1) == status)
      and (queue == '' or qname(ms[i]) == queue) then
      seen[id] = true
      pass[#pass + 1] = id
      pstates[#pass] = v
    end
  end
  if #pass == 0 then return 0 end
  local bodies = read('HMGET', K_JOBS, unpack(pass))
  local n = 0
  for i, id in ipairs(pass) do
    local body = bodies[i]
    if body and (name == '' or name_of(body) == name) then
      found[#found + 1] = { created(body), id, pstates[i], body }
      n = n + 1
    end
  end
  return n
end

-- Reads `next(from, count)` (ids in the index's order, from position
-- `from`) in chunks until `want` matched or `bound` were looked at.
local function scan(next)
  local taken, looked = 0, 0
  while taken < want and looked < bound do
    local count = math.min(math.max(want - taken, 100), 1000, bound - looked)
    local ids = next(looked, count)
    if #ids == 0 then break end
    looked = looked + #ids
    taken = taken + consider(ids)
    if #ids < count then break end
  end
end
local function zset(k)
  scan(function(from, count) return read('ZREVRANGE', k, from, from + count - 1) end)
end
local function bands(k)
  for rank = 0, 3 do
    local hi, lo = '(' .. fmt((rank * 2 + 2) * BAND), fmt(rank * 2 * BAND)
    scan(function(from, count) return read('ZREVRANGEBYSCORE', k, hi, lo, 'LIMIT', from, count) end)
  end
end

local waiting = status == '' or status == 'P' or status == 'T'
if waiting then
  local queues = { DEFAULT_QUEUE }
  if queue ~= '' then queues = { queue }
  else
    for _, q in ipairs(read('SMEMBERS', K_QUEUES)) do
      if q ~= DEFAULT_QUEUE then queues[#queues + 1] = q end
    end
  end
  for _, q in ipairs(queues) do bands(ready_key(q, true)) end
  for _, k in ipairs(read('SMEMBERS', K_KEYS)) do
    -- The jobs limits hold back wait too.
    local kind = string.sub(k, #PREFIX + 1, #PREFIX + 6)
    if string.sub(kind, 1, 5) == 'held:' or kind == 'rheld:' then
      expect(k, 'zset')
      zset(k)
    end
  end
  zset(K_DELAYED)
end
if status == '' or status == 'R' then zset(K_RUNNING) end
if status == '' or final(status) then
  scan(function(from, count)
    local entries = read('LRANGE', K_DONE, from, from + count - 1)
    local ids = {}
    for _, e in ipairs(entries) do
      -- A placeholder keeps the count of entries looked at right.
      if status == '' or string.sub(e, 1, 1) == status then
        ids[#ids + 1] = string.match(e, '^.([^|]*)')
      else
        ids[#ids + 1] = ''
      end
    end
    return ids
  end)
end

table.sort(found, function(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  return a[2] > b[2]
end)
local out = { '0' }
if #found > offset + limit then out[1] = '1' end
for i = offset + 1, math.min(offset + limit, #found) do
  local f = found[i]
  out[#out + 1] = f[2]
  out[#out + 1] = f[3]
  out[#out + 1] = f[4]
end
return out
