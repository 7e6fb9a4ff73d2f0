-- ARGV after the common ones: limit, then '1'/'0' flags: waiting, running,
-- finished, and the status letter of the finished jobs wanted ('' for all).
-- Returns id, state, JSON of the candidates (one consistent snapshot): the
-- newest `limit` of each priority band, of the scheduled, running and
-- finished jobs (of that status).
local ARG_LIMIT, ARG_WAITING, ARG_RUNNING, ARG_FINISHED, ARG_WANTED =
  ARG_OWN, ARG_OWN + 1, ARG_OWN + 2, ARG_OWN + 3, ARG_OWN + 4

local limit = tonumber(ARGV[ARG_LIMIT])
local ids = {}
local function add(list) for _, id in ipairs(list) do ids[#ids + 1] = id end end
if ARGV[ARG_WAITING] == '1' then
  local readies = { K_READY }
  for _, q in ipairs(read('SMEMBERS', K_QUEUES)) do
    if q ~= DEFAULT_QUEUE then readies[#readies + 1] = ready_key(q) end
  end
  for _, k in ipairs(read('SMEMBERS', K_KEYS)) do
    -- The jobs limits hold back wait too.
    if string.sub(k, #PREFIX + 1, #PREFIX + 5) == 'held:' or string.sub(k, #PREFIX + 1, #PREFIX + 6) == 'rheld:' then
      touch(k, 'zset')
      readies[#readies + 1] = k
    end
  end
  for _, rk in ipairs(readies) do
    for rank = 0, 3 do
      add(read('ZREVRANGEBYSCORE', rk, '(' .. fmt((rank * 2 + 2) * BAND),
        fmt(rank * 2 * BAND), 'LIMIT', 0, limit))
    end
  end
  add(read('ZREVRANGE', K_DELAYED, 0, limit - 1))
end
if ARGV[ARG_RUNNING] == '1' then add(read('ZREVRANGE', K_RUNNING, 0, limit - 1)) end
if ARGV[ARG_FINISHED] == '1' then
  local want = ARGV[ARG_WANTED]
  local entries
  if want == '' then entries = read('LRANGE', K_DONE, 0, limit - 1)
  else entries = read('LRANGE', K_DONE, 0, -1) end
  local taken = 0
  for _, e in ipairs(entries) do
    if taken >= limit then break end
    if want == '' or string.sub(e, 1, 1) == want then
      ids[#ids + 1] = string.match(e, '^.([^|]*)')
      taken = taken + 1
    end
  end
end
local out = {}
if #ids == 0 then return out end
local states = read('HMGET', K_STATE, unpack(ids))
local bodies = read('HMGET', K_JOBS, unpack(ids))
for i, id in ipairs(ids) do
  if states[i] then
    out[#out + 1] = id
    out[#out + 1] = states[i]
    out[#out + 1] = bodies[i] or ''
  end
end
return out
