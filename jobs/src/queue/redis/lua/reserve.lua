-- Moves due scheduled jobs to ready, hands back jobs whose rate window
-- opened, then reserves from each named queue in turn. ARGV after the
-- common ones: lease (us), then TAKE_WIDTH values per queue: its name, the
-- most jobs to take, its concurrency limit, its rate limit's max and period
-- (us) (0: no such limit).
-- Returns {next wake (us, -1 if none), id, state, job JSON, ...}: the next
-- wake is the earliest of the next scheduled job's due time and the next
-- time a rate limit lets a job start.
-- A job found in ready whose record contradicts it is dealt with here and
-- not returned: no state, no JSON, or a state that does not parse: failed
-- (quarantined) with an error naming the key; running (and held in
-- running): left to its holder; finished: dropped from ready.
-- A job that its own limit holds back moves from ready to the key's held
-- set (keeping its ready score), and the next one is looked at.
local ARG_LEASE, ARG_TAKES = ARG_OWN, ARG_OWN + 1
local TAKE_QUEUE, TAKE_MAX, TAKE_CONC, TAKE_RATE, TAKE_PERIOD, TAKE_WIDTH = 0, 1, 2, 3, 4, 5
-- The most ready jobs looked at per call.
local BUDGET = 1000

local now = now_us()
local lease = tonumber(ARGV[ARG_LEASE])
local fin = {}
promote_due(now)
promote_wakes(now)
local out = { '-1' }
local next_wake = nil
local function soon(t) if next_wake == nil or t < next_wake then next_wake = t end end
local nows, deadline = fmt(now), fmt(now + lease)
local budget = BUDGET
local from = { P = 0, T = 0 }

-- Running jobs per concurrency key, and starts in the window per rate key,
-- as read (once per key) plus those of this call.
local conc, rate = {}, {}
-- The rate keys started from here, and their periods: trimmed to their
-- window once, at the end.
local trim = {}
local seq_start, seq_end = nil, 0
local function conc_of(k)
  if conc[k] == nil then
    if counting == nil then
      -- Whether the queues' running jobs are counted, in the same read.
      local v = read('HMGET', K_ACTIVE, 'c:' .. k, COUNTING)
      conc[k] = tonumber(v[1] or '0') or 0
      counting = v[2] ~= false
    else
      conc[k] = tonumber(read('HGET', K_ACTIVE, 'c:' .. k) or '0') or 0
    end
  end
  return conc[k]
end
local function rate_of(k, period)
  if rate[k] == nil then
    local rk = rate_key(k)
    expect(rk, 'zset')
    rate[k] = read('ZCOUNT', rk, '(' .. fmt(now - period), '+inf')
    -- A key that holds starts is in the keys set already.
    if rate[k] > 0 then kept[rk] = true end
  end
  return rate[k]
end
-- The earliest start in a rate window (now if none was stored).
local function oldest(key, period)
  local first = read('ZRANGEBYSCORE', key, '(' .. fmt(now - period), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if first[2] then return tonumber(first[2]) end
  return now
end

-- The paused queues, read once (none while no flow-control key exists).
local paused_set = nil
local function paused(q)
  if not any_flow() then return false end
  if not paused_set then
    paused_set = {}
    for _, p in ipairs(read('SMEMBERS', K_PAUSED)) do paused_set[p] = true end
  end
  return paused_set[q] == true
end

-- A queue concurrency limit needs the running jobs per queue counted: the
-- first such take reads whether they are (and its queue's count, kept in
-- `queue_running`), else counts them now.
local queue_running = {}
for b = ARG_TAKES, #ARGV, TAKE_WIDTH do
  if tonumber(ARGV[b + TAKE_CONC]) > 0 and tonumber(ARGV[b + TAKE_MAX]) > 0 then
    local q = ARGV[b + TAKE_QUEUE]
    local v = read('HMGET', K_ACTIVE, 'q:' .. q, COUNTING)
    counting = v[2] ~= false
    if counting then
      queue_running[q] = tonumber(v[1] or '0') or 0
    else
      count_queues()
    end
    break
  end
end

for b = ARG_TAKES, #ARGV, TAKE_WIDTH do
  local q = ARGV[b + TAKE_QUEUE]
  local cap = tonumber(ARGV[b + TAKE_MAX])
  local qc, rmax, rper = tonumber(ARGV[b + TAKE_CONC]), tonumber(ARGV[b + TAKE_RATE]),
    tonumber(ARGV[b + TAKE_PERIOD])
  if cap > 0 and budget > 0 and not paused(q) then
    local running
    if qc > 0 then
      running = queue_running[q]
      if running == nil then
        running = tonumber(read('HGET', K_ACTIVE, 'q:' .. q) or '0') or 0
      end
      running = running + (active['q:' .. q] or 0)
      cap = math.min(cap, math.max(qc - running, 0))
    end
    local sk, started
    if rmax > 0 then
      sk = PREFIX .. 'started:' .. q
      expect(sk, 'zset')
      started = read('ZCOUNT', sk, '(' .. fmt(now - rper), '+inf')
      if started > 0 then kept[sk] = true end
      cap = math.min(cap, math.max(rmax - started, 0))
    end
    local rk = ready_key(q, true)
    local taken = 0
    local more = true
    while cap > taken and budget > 0 and more do
      local want = math.min(cap - taken, budget)
      -- ZRANGE + ZREMRANGEBYRANK, not ZPOPMIN: no scores to format and
      -- convert (but for a job a limit holds back).
      local ids = read('ZRANGE', rk, 0, want - 1)
      if #ids < want then more = false end
      if #ids == 0 then break end
      budget = budget - #ids
      local states = read('HMGET', K_STATE, unpack(ids))
      local bodies = read('HMGET', K_JOBS, unpack(ids))
      local ms = metas(ids)
      -- Decide first (reads only), then write.
      local take, hold, heads = {}, {}, {}
      for i, id in ipairs(ids) do
        local v, body = states[i], bodies[i]
        local s, r, a, m, t, st, co, pos = header(v)
        heads[i] = { s, r, a, m, pos }
        if (s == 'P' or s == 'T') and body and a ~= U32_MAX then
          local m = ms[i]
          local blocked
          if m and m.c and conc_of(m.c[1]) >= m.c[2] then
            blocked = { key = held_key(m.c[1]) }
          elseif m and m.r and rate_of(m.r[1], m.r[3]) >= m.r[2] then
            local k = m.r[1]
            blocked = { key = rheld_key(k), rate = k, at = oldest(rate_key(k), m.r[3]) + m.r[3] }
            next_rate_wake = nil
          end
          if blocked then
            touch(blocked.key, 'zset')
            blocked.score = read('ZSCORE', rk, id)
            hold[i] = blocked
          else
            take[i] = true
            if m and m.c then conc[m.c[1]] = conc[m.c[1]] + 1 end
            if m and m.r then rate[m.r[1]] = rate[m.r[1]] + 1 end
          end
        end
      end
      guard()
      redis.call('ZREMRANGEBYRANK', rk, 0, #ids - 1)
      local tok = redis.call('INCRBY', K_SEQ, #ids) - #ids
      seq_start = seq_start or tok
      seq_end = tok + #ids
      local hs, za = {}, {}
      for i, id in ipairs(ids) do
        local v, body = states[i], bodies[i]
        local hd = heads[i]
        local s = hd[1]
        if take[i] then
          local r, a, m, pos = hd[2], hd[3], hd[4], hd[5]
          tok = tok + 1
          from[s] = from[s] + 1
          local st = build('R', r, inc(a), m, fmt(tok), nows, '', string.sub(v, pos))
          hs[#hs + 1] = id
          hs[#hs + 1] = st
          za[#za + 1] = deadline
          za[#za + 1] = id
          out[#out + 1] = id
          out[#out + 1] = st
          out[#out + 1] = body
          taken = taken + 1
          local mt = ms[i]
          ran(mt, 1)
          if sk then redis.call('ZADD', sk, nows, fmt(tok)) end
          if mt and mt.r then
            local k = rate_key(mt.r[1])
            redis.call('ZADD', k, nows, fmt(tok))
            trim[k] = mt.r[3]
            keep(k)
          end
          if listen() then event('started', id, body) end
        elseif hold[i] then
          local h = hold[i]
          redis.call('ZADD', h.key, h.score, id)
          keep(h.key)
          if h.rate then
            redis.call('ZADD', K_WAKES, 'LT', fmt(h.at), h.rate)
            woke(h.at)
          end
        elseif s == 'P' or s == 'T' then
          if body then
            quarantine(id, v, K_STATE, 'attempts reached ' .. U32_MAX .. ', the most a job can count', now, fin)
          else
            quarantine(id, v, K_JOBS, 'the job has a state but no JSON', now, fin)
          end
        elseif s == 'R' then
          if not read('ZSCORE', K_RUNNING, id) then
            quarantine(id, v, K_STATE, 'the state says Running, but the job was in ' .. rk ..
              ', not in ' .. K_RUNNING, now, fin)
          end
        elseif s then
          -- Finished: it has no place in ready.
        elseif v then
          quarantine(id, v, K_STATE, why(v), now, fin)
        elseif body then
          quarantine(id, nil, K_STATE, 'the job has JSON but no state', now, fin)
        else
          -- Neither: an id left over in ready; its count is off.
          dirty = true
        end
      end
      if #hs > 0 then redis.call('HSET', K_STATE, unpack(hs)) end
      if #za > 0 then redis.call('ZADD', K_RUNNING, unpack(za)) end
    end
    if budget <= 0 and more then soon(now) end
    if qc > 0 and running + taken >= qc then
      -- Full: the next job of the queue to stop running wakes the workers.
      guard()
      redis.call('HSET', K_ACTIVE, 'f:' .. q, '1')
    end
    if sk then
      if started + taken >= rmax then soon(oldest(sk, rper) + rper) end
      if taken > 0 then
        trim[sk] = rper
        keep(sk)
      end
    end
  end
end
-- The starts out of their window are dropped when this call's tokens pass
-- a multiple of 16 (the counts look at the window only; this bounds what
-- is left over).
if seq_start and math.floor(seq_end / 16) > math.floor(seq_start / 16) then
  for k, period in pairs(trim) do
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. fmt(now - period))
  end
end
if from.P + from.T > 0 or #fin > 0 or dirty then
  count('P', -from.P)
  count('T', -from.T)
  count('R', from.P + from.T)
  if #fin > 0 then finished(fin, now) end
  flush_counts()
  flush_active()
end
local nd = read('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if nd[2] then soon(tonumber(nd[2])) end
if next_rate_wake == nil then
  local nw = read('ZRANGE', K_WAKES, 0, 0, 'WITHSCORES')
  if nw[2] then soon(tonumber(nw[2])) end
elseif next_rate_wake then
  soon(next_rate_wake)
end
if next_wake then out[1] = fmt(next_wake) end
-- Only rate-limit wake times are published from here (other workers learn
-- when to look again); jobs made ready here are taken here.
if wake and wake > 0 then redis.call('PUBLISH', CHANNEL, fmt(wake)) end
if evs then redis.call('PUBLISH', EVENTS, cjson.encode(evs)) end
return out
