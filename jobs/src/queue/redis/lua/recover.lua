-- Jobs whose lease expired go back to ready (the attempt counted), or are
-- failed if it was their last. A job found in running that is not running
-- (an index edited by hand) is put where it belongs: a waiting one back in
-- ready, a finished one nowhere; a record that does not parse is
-- quarantined. A lost attempt is kept among the job's errors and counted
-- as processed and failed for `throughput`. Returns {how many jobs were
-- recovered, 1 if some running job is in no index, else 0}.
--
-- The second value: while the counts are exact, every job counted running
-- holds an entry in running (reserve and finish change both in one
-- script). More counted than held means a running job lost its entry (an
-- index edited by hand): no script would meet it again, so the caller runs
-- `repair`, which puts it back in running with its lease run out.
-- Only reads, through `redis.pcall`: a key of the wrong type (which the
-- writing scripts refuse) makes it answer 0, not fail.
local function orphans()
  local dirty_mark = redis.pcall('HEXISTS', K_COUNTS, DIRTY)
  local counted = redis.pcall('HGET', K_COUNTS, 'R')
  local held = redis.pcall('ZCARD', K_RUNNING)
  if type(dirty_mark) ~= 'number' or dirty_mark == 1 or type(held) ~= 'number' then return 0 end
  if type(counted) == 'table' then return 0 end
  counted = tonumber(counted or '0') or 0
  if counted > held then return 1 end
  return 0
end
local now = now_us()
local expired = read('ZRANGEBYSCORE', K_RUNNING, '-inf', now, 'LIMIT', 0, 1000)
if #expired == 0 then return { 0, orphans() } end
local states = read('HMGET', K_STATE, unpack(expired))
local bodies = {}
for i, id in ipairs(expired) do
  if not states[i] then bodies[i] = read('HEXISTS', K_JOBS, id) == 1 end
end
local ms = metas(expired)
local jsons = {}
if listen() then jsons = read('HMGET', K_JOBS, unpack(expired)) end
guard()
local n = 0
local lost = 0
local fin = {}
-- Workflow steps failed for good, whose dependants are resolved.
local steps = nil
for i, id in ipairs(expired) do
  redis.call('ZREM', K_RUNNING, id)
  local v = states[i]
  local h = parse(v)
  if h and h.s == 'R' then
    local msg = 'the worker running attempt ' .. h.a ..
      ' stopped renewing its lease (it crashed or lost Redis)'
    local last = num(h.a) > num(h.m)
    h.p = room_for_error(h.p) .. '\31' ..
      attempt_patch(string.sub(failure(msg, 'LeaseExpired', not last), 2), h.a, fmt(now))
    lost = lost + 1
    count('R', -1)
    ran(ms[i], -1)
    if last then
      h.s = 'F'
      h.co = fmt(now)
      fin[#fin + 1] = done_entry('F', id, h.co)
      if ms[i] and ms[i].w then
        steps = steps or {}
        steps[#steps + 1] = ended(id, ms[i], h)
      end
    else
      h.s = 'T'
      place(id, 0, h.r, now, qname(ms[i]))
    end
    if listening then event(event_of(h.s), id, jsons[i]) end
    count(h.s, 1)
    redis.call('HSET', K_STATE, id, state(h))
    n = n + 1
  elseif h and (h.s == 'P' or h.s == 'T') then
    place(id, 0, h.r, now, qname(ms[i]))
    n = n + 1
  elseif h then
    -- Finished: it has no place in running.
  elseif v then
    quarantine(id, v, K_STATE, why(v), now, fin)
  elseif bodies[i] then
    quarantine(id, nil, K_STATE, 'the job has JSON but no state', now, fin)
  else
    dirty = true
  end
end
if steps then
  for _, d in ipairs(steps) do resolve(d, now, fin) end
end
if #fin > 0 then finished(fin, now) end
flush_counts()
flush_active()
publish()
-- An attempt whose worker was lost ended in an error.
count_attempts(lost, lost, now)
return { n, orphans() }
