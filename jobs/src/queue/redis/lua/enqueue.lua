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
-- A workflow step (its links not ''; see record.rs, `links`) is checked
-- first, in modes `all` and `check`: each job it depends on must be a
-- stored step or one earlier in the call, each step it blocks a stored
-- step of its workflow still waiting; else the answer is {'bad', why} and
-- nothing is stored. A stored step waits (in no index) for its
-- dependencies not finished yet; one that is final at once leaves its
-- result, or cancels the step (unless it runs always) if it did not
-- complete. `each` mode takes no steps.
-- A unique job's lock (the unique hash: key -> holder id|enqueue time us)
-- blocks it while the holder exists, in one of the statuses the new job
-- names, and (with a period) was enqueued less than a period ago; else the
-- new job takes the lock. Earlier jobs of the same call count.
local ARG_MODE = ARG_OWN
local ARG_JOBS = ARG_OWN + 1
-- Offsets within one job's values.
local JOB_ID, JOB_STATE, JOB_JSON, JOB_DUE, JOB_RANK, JOB_META, JOB_LINKS, JOB_WIDTH =
  0, 1, 2, 3, 4, 5, 6, 7

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

-- Workflow steps: checked before anything is written.
local links = {}
local any_step = false
if not each then
  local steps_here = {}
  for i = ARG_JOBS, #ARGV, JOB_WIDTH do
    local lv = ARGV[i + JOB_LINKS]
    if lv ~= '' then
      local ok, l = pcall(cjson.decode, lv)
      local m = decode_meta(ARGV[i + JOB_META])
      if not ok or type(l) ~= 'table' or not (m and m.w) then
        return { 'bad', 'job ' .. ARGV[i + JOB_ID] .. ' carries a malformed workflow step' }
      end
      local w = m.w
      for _, dep in ipairs(l.d) do
        local dm = steps_here[dep[1]]
        if not dm then
          if read('HEXISTS', K_STATE, dep[1]) == 0 then
            return { 'bad', 'step `' .. w[2] .. '` of workflow `' .. l.n .. '` depends on job ' ..
              dep[1] .. ' (`' .. dep[2] .. '`), which does not exist' }
          end
          dm = meta_of(dep[1])
        end
        if not (dm and dm.w) then
          return { 'bad', 'step `' .. w[2] .. '` of workflow `' .. l.n .. '` depends on job ' ..
            dep[1] .. ' (`' .. dep[2] .. '`), which is not a workflow step' }
        end
      end
      for _, blk in ipairs(l.b) do
        local bm = meta_of(blk)
        if not (bm and bm.w and bm.w[1] == w[1] and read('HEXISTS', deps_key(), blk) == 1) then
          return { 'bad', 'job ' .. blk .. ' is not a step of workflow `' .. l.n ..
            '` that still waits for its dependencies, so it cannot wait for step `' .. w[2] .. '` too' }
        end
      end
      steps_here[ARGV[i + JOB_ID]] = m
      links[i] = l
      any_step = true
    end
  end
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
    if links[i] then
      -- A step: placed below, once its dependencies are looked at.
    elseif due > now then
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
if any_step then
  local dk, wfs = deps_key(), workflows_key()
  touch(dk, 'hash')
  touch(wfs, 'set')
  local fin = {}
  for i = ARG_JOBS, #ARGV, JOB_WIDTH do
    local l = links[i]
    if l and not skip[i] then
      local id, w = ARGV[i + JOB_ID], jm[i].w
      local wk = wf_key(w[1])
      if redis.call('EXISTS', wk) == 0 then
        redis.call('HSET', wk, 'name', l.n, 'kind', l.k, 'total', 0, 'pending', 0,
          'completed', 0, 'failed', 0, 'cancelled', 0)
        redis.call('SADD', wfs, w[1])
      end
      local total = redis.call('HINCRBY', wk, 'total', 1)
      redis.call('HINCRBY', wk, 'pending', 1)
      redis.call('ZADD', wfjobs_key(w[1]), total, id)
      local waiting, cancel = 0, nil
      for _, dep in ipairs(l.d) do
        local dh = parse(redis.call('HGET', K_STATE, dep[1]))
        if dh and final(dh.s) then
          redis.call('RPUSH', dres_key(id), dres_entry(dh.s, dep[1], dep[2], dh.p))
          if dh.s ~= 'C' and w[3] ~= 1 and not cancel then cancel = cancelled_by(dep[2], dh.s) end
        else
          waiting = waiting + 1
          redis.call('RPUSH', kids_key(dep[1]), id)
        end
      end
      for _, blk in ipairs(l.b) do
        local left, bdue = match(redis.call('HGET', dk, blk) or '', '^(%d+)|(%d+)$')
        if left then redis.call('HSET', dk, blk, fmt(tonumber(left) + 1) .. '|' .. bdue) end
        redis.call('RPUSH', kids_key(id), blk)
      end
      local due = tonumber(ARGV[i + JOB_DUE])
      if cancel then
        local h = parse(ARGV[i + JOB_STATE])
        count(h.s, -1)
        count('X', 1)
        h.s = 'X'
        h.co = fmt(now)
        h.p = h.p .. patch({ last_error = cancel })
        redis.call('HSET', K_STATE, id, state(h))
        fin[#fin + 1] = done_entry('X', id, h.co)
        if listen() then event('cancelled', id, ARGV[i + JOB_JSON]) end
        resolve(ended(id, jm[i], h), now, fin)
      elseif waiting > 0 then
        redis.call('HSET', dk, id, fmt(waiting) .. '|' .. fmt(due))
      else
        place(id, due, ARGV[i + JOB_RANK], now, qname(jm[i]))
      end
    end
  end
  if #fin > 0 then finished(fin, now) end
end
flush_counts()
publish()
if all_in then return { 'ok' } end
return res
