-- Checks every job against the indexes and recounts (O(jobs); for after a
-- key was restored or edited by hand). A waiting job in neither ready nor
-- delayed goes back to ready (due now); a running one missing from running
-- goes back in it with its lease run out, so that lease recovery retries
-- it; a record that does not parse, or a state without JSON or JSON without
-- state, is quarantined. Then the counts are recomputed.
-- Returns {jobs put back in an index, jobs quarantined}.
guard()
local now = now_us()
local reindex, bad, orphans = {}, {}, {}
local cursor = '0'
repeat
  local page = read('HSCAN', K_STATE, cursor, 'COUNT', 1000)
  cursor = page[1]
  local kv = page[2]
  for i = 1, #kv, 2 do
    local id, v = kv[i], kv[i + 1]
    local s, r = header(v)
    if not s then
      bad[#bad + 1] = { id, v, K_STATE, why(v) }
    elseif read('HEXISTS', K_JOBS, id) == 0 then
      if not FINAL[s] then bad[#bad + 1] = { id, v, K_JOBS, 'the job has a state but no JSON' } end
    elseif s == 'P' or s == 'T' then
      if not read('ZSCORE', K_READY, id) and not read('ZSCORE', K_DELAYED, id) then
        reindex[#reindex + 1] = { id, s, r }
      end
    elseif s == 'R' then
      if not read('ZSCORE', K_RUNNING, id) then reindex[#reindex + 1] = { id, s, r } end
    end
  end
until cursor == '0'
cursor = '0'
repeat
  local page = read('HSCAN', K_JOBS, cursor, 'COUNT', 1000)
  cursor = page[1]
  local kv = page[2]
  for i = 1, #kv, 2 do
    if read('HEXISTS', K_STATE, kv[i]) == 0 then orphans[#orphans + 1] = kv[i] end
  end
until cursor == '0'

for _, job in ipairs(reindex) do
  if job[2] == 'R' then
    redis.call('ZADD', K_RUNNING, fmt(now), job[1])
  else
    place(job[1], 0, job[3], now)
  end
end
local fin = {}
for _, job in ipairs(bad) do quarantine(job[1], job[2], job[3], job[4], now, fin) end
for _, id in ipairs(orphans) do
  quarantine(id, nil, K_STATE, 'the job has JSON but no state', now, fin)
end
finished(fin, now)
recount()
flush_counts()
publish()
return { #reindex, #bad + #orphans }
