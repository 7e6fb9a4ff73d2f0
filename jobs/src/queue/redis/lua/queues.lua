-- The named queues: every one that had a job or is paused. Moves due
-- scheduled jobs to ready first. Returns name, paused ('1'/'0'), ready
-- jobs (not held back by a limit), per queue, in no order.
promote_due(now_us())
local names = {}
for _, q in ipairs(read('SMEMBERS', K_QUEUES)) do names[q] = '0' end
for _, q in ipairs(read('SMEMBERS', K_PAUSED)) do names[q] = '1' end
local out = {}
for q, p in pairs(names) do
  out[#out + 1] = q
  out[#out + 1] = p
  out[#out + 1] = read('ZCARD', ready_key(q))
end
return out
