-- ARGV after the common ones: ids. Returns id, state, JSON (each '' if
-- missing) for each job that has either.
local ARG_IDS = ARG_OWN

local out = {}
local ids = {}
for i = ARG_IDS, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return out end
local states = read('HMGET', K_STATE, unpack(ids))
local bodies = read('HMGET', K_JOBS, unpack(ids))
for i, id in ipairs(ids) do
  if states[i] or bodies[i] then
    out[#out + 1] = id
    out[#out + 1] = states[i] or ''
    out[#out + 1] = bodies[i] or ''
  end
end
return out
