-- Removes every job, whatever its keys hold (a way out for an operator
-- after a key was replaced by hand); returns how many jobs there were. The
-- sequence counter stays, so leases handed out before stay stale, and so
-- do the paused queues (a setting, not a job). The keys made per named
-- queue and limit key go too (their names are in the queues and keys sets).
local n = redis.pcall('HLEN', K_STATE)
if type(n) ~= 'number' then n = 0 end
local doomed = {}
local qs = redis.pcall('SMEMBERS', K_QUEUES)
if not qs.err then
  for _, q in ipairs(qs) do
    if q ~= DEFAULT_QUEUE then
      doomed[#doomed + 1] = PREFIX .. 'ready:' .. q
      doomed[#doomed + 1] = PREFIX .. 'started:' .. q
    end
  end
end
local ks = redis.pcall('SMEMBERS', K_KEYS)
if not ks.err then
  for _, k in ipairs(ks) do doomed[#doomed + 1] = k end
end
local ws = redis.pcall('ZRANGE', K_WAKES, 0, -1)
if not ws.err then
  for _, k in ipairs(ws) do doomed[#doomed + 1] = rheld_key(k) end
end
-- Workflows: each one's record and steps, and the dependency state of
-- its steps.
local wfs = redis.pcall('SMEMBERS', PREFIX .. 'workflows')
if not wfs.err then
  for _, wf in ipairs(wfs) do
    doomed[#doomed + 1] = PREFIX .. 'wf:' .. wf
    doomed[#doomed + 1] = PREFIX .. 'wfjobs:' .. wf
    local steps = redis.pcall('ZRANGE', PREFIX .. 'wfjobs:' .. wf, 0, -1)
    if not steps.err then
      for _, id in ipairs(steps) do
        doomed[#doomed + 1] = PREFIX .. 'kids:' .. id
        doomed[#doomed + 1] = PREFIX .. 'dres:' .. id
      end
    end
  end
end
doomed[#doomed + 1] = PREFIX .. 'workflows'
doomed[#doomed + 1] = PREFIX .. 'deps'
for i = 1, #doomed, 1000 do
  redis.call('UNLINK', unpack(doomed, i, math.min(i + 999, #doomed)))
end
redis.call('UNLINK', K_JOBS, K_STATE, K_READY, K_DELAYED, K_RUNNING, K_DONE, K_COUNTS,
  K_META, K_QUEUES, K_ACTIVE, K_WAKES, K_UNIQUE, K_KEYS, PREFIX .. 'started:' .. DEFAULT_QUEUE)
return n
