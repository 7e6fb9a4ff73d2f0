-- Settles finished attempts. ARGV after the common ones, per entry
-- ENTRY_WIDTH values: id, token, new status (followed by `+` if a next job
-- follows; `S` for a snoozed attempt: waiting again, the attempt not
-- counted), patch ('' = none), retry (or snooze) at (us); then, after a
-- `+`, NEXT_WIDTH more: the next job's id, state, JSON, due (us), rank, meta.
-- Returns 1 per entry whose lease was held (and is now settled), else 0.
-- A settled job frees its place in its queue's and its key's running
-- counts; a job its concurrency key held back takes the place. A failed
-- attempt's patch gets its attempt number and time in front (the job's
-- errors; the oldest beyond MAX_ERRORS are dropped), and the attempts
-- settled are counted for `throughput` once per call. A workflow step
-- that ends resolves the steps waiting for it (`resolve`) in the same call.
local ARG_ENTRIES = ARG_OWN
local ENTRY_ID, ENTRY_TOKEN, ENTRY_STATUS, ENTRY_PATCH, ENTRY_AT, ENTRY_WIDTH = 0, 1, 2, 3, 4, 5
local NEXT_ID, NEXT_STATE, NEXT_JSON, NEXT_DUE, NEXT_RANK, NEXT_META, NEXT_WIDTH = 5, 6, 7, 8, 9, 10, 6

local now = now_us()
local res = {}
local ids, base = {}, {}
local b = ARG_ENTRIES
local nexts = false
while b <= #ARGV do
  ids[#ids + 1] = ARGV[b + ENTRY_ID]
  base[#base + 1] = b
  if #ARGV[b + ENTRY_STATUS] > 1 then
    b = b + ENTRY_WIDTH + NEXT_WIDTH
    nexts = true
  else
    b = b + ENTRY_WIDTH
  end
end
local states = read('HMGET', K_STATE, unpack(ids))
local ms = metas(ids)
local bodies = {}
if listen() then bodies = read('HMGET', K_JOBS, unpack(ids)) end
guard()
if nexts then touch(K_QUEUES, 'set') end
local hs, zrem, fin = {}, {}, {}
local co = fmt(now)
local running = 0
local steps = nil
local processed, failed = 0, 0
for k, id in ipairs(ids) do
  local b = base[k]
  local st, p = ARGV[b + ENTRY_STATUS], ARGV[b + ENTRY_PATCH]
  local nxt = #st > 1
  if nxt then st = string.sub(st, 1, 1) end
  local s, r, a, m, t, started, done, pos = header(states[k])
  if s == 'R' and t == ARGV[b + ENTRY_TOKEN] then
    zrem[#zrem + 1] = id
    local patches = string.sub(states[k], pos)
    if st == 'T' or st == 'F' then
      patches = room_for_error(patches) .. '\31' .. attempt_patch(p, a, co)
      failed = failed + 1
    elseif p ~= '' then
      patches = patches .. '\31' .. p
    end
    if st ~= 'S' then processed = processed + 1 end
    running = running + 1
    ran(ms[k], -1)
    if listening then event(event_of(st), id, bodies[k]) end
    local q = qname(ms[k])
    if st == 'S' then
      -- Snoozed: back to waiting, as if this attempt had not started.
      local n = num(a)
      if n > 0 then n = n - 1 end
      a = fmt(n)
      if n > 0 then st = 'T' else st = 'P' end
      started = ''
      place(id, tonumber(ARGV[b + ENTRY_AT]), r, now, q)
    elseif st == 'T' then
      place(id, tonumber(ARGV[b + ENTRY_AT]), r, now, q)
    else
      done = co
      fin[#fin + 1] = done_entry(st, id, co)
      -- A workflow step's dependants are resolved below.
      if ms[k] and ms[k].w then
        steps = steps or {}
        steps[#steps + 1] = { id = id, wf = ms[k].w[1], name = ms[k].w[2], s = st, p = patches }
      end
    end
    count(st, 1)
    hs[#hs + 1] = id
    hs[#hs + 1] = build(st, r, a, m, t, started, done, patches)
    if nxt then
      local nid, nstate = ARGV[b + NEXT_ID], ARGV[b + NEXT_STATE]
      if redis.call('HSETNX', K_STATE, nid, nstate) == 1 then
        redis.call('HSET', K_JOBS, nid, ARGV[b + NEXT_JSON])
        local nm = ARGV[b + NEXT_META]
        local nq = DEFAULT_QUEUE
        if nm ~= '' then
          redis.call('HSET', K_META, nid, nm)
          has_meta = true
          nq = qname(decode_meta(nm))
        end
        redis.call('SADD', K_QUEUES, nq)
        place(nid, tonumber(ARGV[b + NEXT_DUE]), ARGV[b + NEXT_RANK], now, nq)
        count(string.sub(nstate, 1, 1), 1)
      end
    end
    res[k] = 1
  else
    res[k] = 0
  end
end
if #hs > 0 then redis.call('HSET', K_STATE, unpack(hs)) end
if #zrem > 0 then redis.call('ZREM', K_RUNNING, unpack(zrem)) end
if steps then
  for _, d in ipairs(steps) do resolve(d, now, fin) end
end
count('R', -running)
finished(fin, now)
flush_counts()
flush_active()
publish()
count_attempts(processed, failed, now)
return res
