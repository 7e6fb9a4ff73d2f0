-- Stores new jobs. ARGV after the common ones: the mode, then JOB_WIDTH
-- values per job.
--   mode `all`:   stores every job, or none if an id is taken: returns
--                 {'dup', id}, or {'ok'} if all were stored, else {'ok',
--                 then per job '1' (stored) or 'c<id>' (a unique job whose
--                 twin <id> holds the lock: not stored)}.
--   mode `each`:  independent enqueues sent together: stores the jobs whose
--                 ids are free; returns {'each', then per job '1', '0' (id
--                 taken) or 'c<id>'}.
--   mode `check`: stores nothing; returns {'ok'} or {'dup', id} as `all`
--                 would (the first pass of a batch split into chunks).
-- A unique job's lock (the unique hash: key -> holder id|enqueue time us)
-- blocks it while the holder exists, in one of the statuses the new job
-- names, and (with a period) was enqueued less than a period ago; else the
-- new job takes the lock. Earlier jobs of the same call count.
local ARG_MODE = ARG_OWN
local ARG_JOBS = ARG_OWN + 1
-- Offsets within one job's values.
local JOB_ID, JOB_STATE, JOB_JSON, JOB_DUE, JOB_RANK, JOB_META, JOB_WIDTH = 0, 1, 2, 3, 4, 5, 6

local mode = ARGV[ARG_MODE]
local each = mode == 'each'
local skip = {}
local seen = {}
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  local id = ARGV[i + JOB_ID]
  if seen[id] or read('HEXISTS', K_STATE, id) == 1 then
    if not each then return { 'dup', id } end
    skip[i] = '0'
  end
  seen[id] = true
end
if mode == 'check' then return { 'ok' } end

local now = now_us()
local jm = {}
local locks = {}
local taken = {}
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  local mv = ARGV[i + JOB_META]
  if not skip[i] and mv ~= '' then
    local m = decode_meta(mv)
    jm[i] = m
    if m and m.u then
      local k = m.u[1]
      local l = locks[k]
      if l == nil then
        l = false
        local v = read('HGET', K_UNIQUE, k)
        if v then
          local h, t = match(v, '^(.*)|(%d+)$')
          if h then
            local s = header(read('HGET', K_STATE, h))
            if s then l = { h, s, tonumber(t) } end
          end
        end
      end
      if l and string.find(m.u[2], l[2], 1, true)
        and (m.u[3] == 0 or now - l[3] < m.u[3]) then
        skip[i] = 'c' .. l[1]
      else
        local id = ARGV[i + JOB_ID]
        l = { id, string.sub(ARGV[i + JOB_STATE], 1, 1), now }
        taken[k] = id
      end
      locks[k] = l
    end
  end
end

local res = { 'ok' }
if each then res[1] = 'each' end
-- Mode `all` with no job left out answers {'ok'} alone.
local all_in = not each
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  if skip[i] then all_in = false end
end
local fresh = 0
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  if not skip[i] then fresh = fresh + 1 end
end
if fresh == 0 then
  for i = ARG_JOBS, #ARGV, JOB_WIDTH do res[#res + 1] = skip[i] end
  return res
end
guard()
touch(K_QUEUES, 'set')
local states, bodies, delayed, mh = {}, {}, {}, {}
local ready = {}
local queues = {}
local seq = redis.call('INCRBY', K_SEQ, fresh) - fresh
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  if skip[i] then
    res[#res + 1] = skip[i]
  else
    res[#res + 1] = '1'
    local id, st = ARGV[i + JOB_ID], ARGV[i + JOB_STATE]
    local due = tonumber(ARGV[i + JOB_DUE])
    states[#states + 1] = id
    states[#states + 1] = st
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = ARGV[i + JOB_JSON]
    local q = qname(jm[i])
    queues[q] = true
    if ARGV[i + JOB_META] ~= '' then
      mh[#mh + 1] = id
      mh[#mh + 1] = ARGV[i + JOB_META]
    end
    if due > now then
      delayed[#delayed + 1] = ARGV[i + JOB_DUE]
      delayed[#delayed + 1] = id
      woke(due)
    else
      seq = seq + 1
      local rk = ready_key(q)
      ready[rk] = ready[rk] or {}
      local z = ready[rk]
      z[#z + 1] = back(ARGV[i + JOB_RANK], seq)
      z[#z + 1] = id
      woke(0)
    end
    count(string.sub(st, 1, 1), 1)
  end
end
variadic('HSET', K_STATE, states)
variadic('HSET', K_JOBS, bodies)
if #mh > 0 then
  variadic('HSET', K_META, mh)
  has_meta = true
end
for k, id in pairs(taken) do redis.call('HSET', K_UNIQUE, k, id .. '|' .. fmt(now)) end
for rk, z in pairs(ready) do variadic('ZADD', rk, z) end
variadic('ZADD', K_DELAYED, delayed)
local qs = {}
for q in pairs(queues) do qs[#qs + 1] = q end
redis.call('SADD', K_QUEUES, unpack(qs))
flush_counts()
publish()
if all_in then return { 'ok' } end
return res
