-- Returns the counts hash as a flat list, then 'S' and the number of
-- scheduled (not yet due) jobs. Recounts first (O(jobs)) when the counts
-- were marked for it, or when the hash is gone while jobs exist.
if read('HEXISTS', K_COUNTS, DIRTY) == 1
  or (read('EXISTS', K_COUNTS) == 0 and read('HLEN', K_STATE) > 0) then
  guard()
  recount()
end
local out = read('HGETALL', K_COUNTS)
out[#out + 1] = 'S'
out[#out + 1] = tostring(read('ZCOUNT', K_DELAYED, '(' .. fmt(now_us()), '+inf'))
return out
