-- Checks every job against the indexes and recounts (O(jobs), a few calls
-- per thousand jobs; for after a key was restored or edited by hand). A
-- waiting job in neither ready nor delayed goes back to ready (due now); a
-- running one missing from running goes back in it with its lease run out,
-- so that lease recovery retries it; a record that does not parse, or a
-- state without JSON or JSON without state, is quarantined. Then the
-- counts are recomputed. Needs Redis 6.2 (ZMSCORE).
-- Returns {jobs put back in an index, jobs quarantined}.
guard()
local now = now_us()
local has_json = {}
for _, id in ipairs(read('HKEYS', K_JOBS)) do has_json[id] = true end
local has_state = {}
local reindex, bad = {}, {}
-- The scores of `ids` in the sorted set `key` (false where absent).
local function scores(key, ids)
  local out = {}
  for i = 1, #ids, 4000 do
    local part = redis.call('ZMSCORE', key, unpack(ids, i, math.min(i + 3999, #ids)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end
local cursor = '0'
repeat
  local page = read('HSCAN', K_STATE, cursor, 'COUNT', 1000)
  cursor = page[1]
  local kv = page[2]
  local ids, heads = {}, {}
  for i = 1, #kv, 2 do
    local id, v = kv[i], kv[i + 1]
    has_state[id] = true
    local s, r = header(v)
    if not s then
      bad[#bad + 1] = { id, v, K_STATE, why(v) }
    elseif not has_json[id] then
      if not final(s) then bad[#bad + 1] = { id, v, K_JOBS, 'the job has a state but no JSON' } end
    elseif not final(s) then
      ids[#ids + 1] = id
      heads[#heads + 1] = { s, r }
    end
  end
  if #ids > 0 then
    local delayed, running = scores(K_DELAYED, ids), scores(K_RUNNING, ids)
    local ms = metas(ids)
    for j, id in ipairs(ids) do
      local s, r = heads[j][1], heads[j][2]
      local m = ms[j]
      if s == 'R' then
        if not running[j] then reindex[#reindex + 1] = { id, s, r, m } end
        -- Recounted below: the running jobs per queue and key.
        ran(m, 1)
      elseif m and m.w and redis.call('HEXISTS', PREFIX .. 'deps', id) == 1 then
        -- A workflow step waiting for its dependencies: in no index.
      elseif not delayed[j] and not redis.call('ZSCORE', ready_key(qname(m)), id)
        and not (m and m.c and redis.call('ZSCORE', held_key(m.c[1]), id))
        and not (m and m.r and redis.call('ZSCORE', rheld_key(m.r[1]), id)) then
        reindex[#reindex + 1] = { id, s, r, m }
      end
    end
  end
until cursor == '0'
local orphans = {}
for id in pairs(has_json) do
  if not has_state[id] then orphans[#orphans + 1] = id end
end

for _, job in ipairs(reindex) do
  if job[2] == 'R' then
    redis.call('ZADD', K_RUNNING, fmt(now), job[1])
  else
    place(job[1], 0, job[3], now, qname(job[4]))
  end
end
local fin = {}
for _, job in ipairs(bad) do quarantine(job[1], job[2], job[3], job[4], now, fin) end
for _, id in ipairs(orphans) do
  quarantine(id, nil, K_STATE, 'the job has JSON but no state', now, fin)
end
finished(fin, now)
recount()
-- The running counts per queue and concurrency key, from the running jobs
-- (the `f:` marks of full queues are dropped: a worker finding its queue
-- still full sets it again).
local was_counting = counting_queues()
redis.call('DEL', K_ACTIVE)
if was_counting then redis.call('HSET', K_ACTIVE, COUNTING, '1') end
for f, n in pairs(active) do
  if n > 0 then redis.call('HSET', K_ACTIVE, f, fmt(n)) end
end
active = {}
flush_counts()
publish()
return { #reindex, #bad + #orphans }
