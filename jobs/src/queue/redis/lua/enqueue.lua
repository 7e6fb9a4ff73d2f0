-- Stores new jobs. ARGV after the common ones: the mode, then JOB_WIDTH
-- values per job.
--   mode `all`:   stores every job, or none if an id is taken:
--                 returns {'ok'} or {'dup', id}.
--   mode `each`:  independent enqueues sent together: stores the jobs whose
--                 ids are free; returns {'each', 1 or 0 per job}.
--   mode `check`: stores nothing; returns {'ok'} or {'dup', id} as `all`
--                 would (the first pass of a batch split into chunks).
local ARG_MODE = ARG_OWN
local ARG_JOBS = ARG_OWN + 1
-- Offsets within one job's values.
local JOB_ID, JOB_STATE, JOB_JSON, JOB_DUE, JOB_RANK, JOB_WIDTH = 0, 1, 2, 3, 4, 5

local mode = ARGV[ARG_MODE]
local each = mode == 'each'
local skip = {}
local seen = {}
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  local id = ARGV[i + JOB_ID]
  if seen[id] or read('HEXISTS', K_STATE, id) == 1 then
    if not each then return { 'dup', id } end
    skip[i] = true
  end
  seen[id] = true
end
if mode == 'check' then return { 'ok' } end

local now = now_us()
local states, bodies, ready, delayed = {}, {}, {}, {}
local res = { 'each' }
local fresh = 0
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  if not skip[i] then fresh = fresh + 1 end
end
if fresh == 0 then
  for _ = ARG_JOBS, #ARGV, JOB_WIDTH do res[#res + 1] = 0 end
  return res
end
guard()
local seq = redis.call('INCRBY', K_SEQ, fresh) - fresh
for i = ARG_JOBS, #ARGV, JOB_WIDTH do
  if skip[i] then
    res[#res + 1] = 0
  else
    res[#res + 1] = 1
    local id, st = ARGV[i + JOB_ID], ARGV[i + JOB_STATE]
    local due = tonumber(ARGV[i + JOB_DUE])
    states[#states + 1] = id
    states[#states + 1] = st
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = ARGV[i + JOB_JSON]
    if due > now then
      delayed[#delayed + 1] = ARGV[i + JOB_DUE]
      delayed[#delayed + 1] = id
      woke(due)
    else
      seq = seq + 1
      ready[#ready + 1] = back(ARGV[i + JOB_RANK], seq)
      ready[#ready + 1] = id
      woke(0)
    end
    count(string.sub(st, 1, 1), 1)
  end
end
variadic('HSET', K_STATE, states)
variadic('HSET', K_JOBS, bodies)
variadic('ZADD', K_READY, ready)
variadic('ZADD', K_DELAYED, delayed)
flush_counts()
publish()
if each then return res end
return { 'ok' }
