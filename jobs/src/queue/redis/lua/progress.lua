-- Records a running job's progress, if the lease is still held. ARGV after
-- the common ones: id, token, the progress (JSON). It is a patch
-- (`{"progress":..}`) replacing the previous progress patch, so `get` shows
-- the last value reported, also after the job finished. Returns 1 if
-- recorded, else 0.
local ARG_ID, ARG_TOKEN, ARG_VALUE = ARG_OWN, ARG_OWN + 1, ARG_OWN + 2

local id, value = ARGV[ARG_ID], ARGV[ARG_VALUE]
local v = read('HGET', K_STATE, id)
local h = parse(v)
if not h or h.s ~= 'R' or h.t ~= ARGV[ARG_TOKEN] then return 0 end
local body = nil
if listen() then body = read('HGET', K_JOBS, id) end
guard()
h.p = (string.gsub(h.p, '\31{"progress":[^\31]*', '')) .. '\31{"progress":' .. value .. '}'
redis.call('HSET', K_STATE, id, state(h))
if listening then event('progress', id, body, value) end
publish()
return 1
