-- Moves due scheduled jobs to ready, then reserves up to `max` ready jobs.
-- ARGV after the common ones: max, lease (us).
-- Returns {next due (us, -1 if none), id, state, job JSON, ...}.
-- A job found in ready whose record contradicts it is dealt with here and
-- not returned: no state, no JSON, or a state that does not parse: failed
-- (quarantined) with an error naming the key; running (and held in
-- running): left to its holder; finished: dropped from ready.
local ARG_MAX, ARG_LEASE = ARG_OWN, ARG_OWN + 1

local now = now_us()
local max, lease = tonumber(ARGV[ARG_MAX]), tonumber(ARGV[ARG_LEASE])
local fin = {}
local due = read('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local states = read('HMGET', K_STATE, unpack(due))
  guard()
  local seq = redis.call('INCRBY', K_SEQ, #due) - #due
  local za = {}
  for i, id in ipairs(due) do
    local _, r = header(states[i])
    seq = seq + 1
    -- A job whose state does not parse goes to ready all the same, to be
    -- quarantined below.
    za[#za + 1] = back(r or '1', seq)
    za[#za + 1] = id
  end
  redis.call('ZADD', K_READY, unpack(za))
  redis.call('ZREM', K_DELAYED, unpack(due))
end
local out = { '-1' }
-- ZRANGE + ZREMRANGEBYRANK, not ZPOPMIN: no scores to format and convert.
local ids = read('ZRANGE', K_READY, 0, max - 1)
if #ids > 0 then
  local states = read('HMGET', K_STATE, unpack(ids))
  local bodies = read('HMGET', K_JOBS, unpack(ids))
  guard()
  local tok = redis.call('INCRBY', K_SEQ, #ids) - #ids
  redis.call('ZREMRANGEBYRANK', K_READY, 0, #ids - 1)
  local nows, deadline = fmt(now), fmt(now + lease)
  local hs, za = {}, {}
  local from = { P = 0, T = 0 }
  for i, id in ipairs(ids) do
    local v, body = states[i], bodies[i]
    local s, r, a, m, _, _, _, pos = header(v)
    if (s == 'P' or s == 'T') and body and a ~= U32_MAX then
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
    elseif s == 'P' or s == 'T' then
      if body then
        quarantine(id, v, K_STATE, 'attempts reached ' .. U32_MAX .. ', the most a job can count', now, fin)
      else
        quarantine(id, v, K_JOBS, 'the job has a state but no JSON', now, fin)
      end
    elseif s == 'R' then
      if not read('ZSCORE', K_RUNNING, id) then
        quarantine(id, v, K_STATE, 'the state says Running, but the job was in ' .. K_READY ..
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
  count('P', -from.P)
  count('T', -from.T)
  count('R', from.P + from.T)
  if #hs > 0 then redis.call('HSET', K_STATE, unpack(hs)) end
  if #za > 0 then redis.call('ZADD', K_RUNNING, unpack(za)) end
  if #fin > 0 then finished(fin, now) end
  flush_counts()
end
local nd = read('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if nd[2] then out[1] = nd[2] end
return out
