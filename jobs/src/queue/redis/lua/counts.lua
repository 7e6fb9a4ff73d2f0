-- Returns the counts hash as a flat list, then 'S' and the number of
-- scheduled (not yet due) jobs. Recounts first (O(jobs)) when the counts
-- were marked for it, or when the hash is gone while jobs exist.
if redis.call('HEXISTS', K_COUNTS, DIRTY) == 1
  or (redis.call('EXISTS', K_COUNTS) == 0 and redis.call('HLEN', K_STATE) > 0) then
  guard()
  recount()
end
local out = redis.call('HGETALL', K_COUNTS)
out[#out + 1] = 'S'
out[#out + 1] = tostring(redis.call('ZCOUNT', K_DELAYED, '(' .. fmt(now_us()), '+inf'))
return out
