-- Extends held leases. ARGV after the common ones: lease (us), then
-- LEASE_WIDTH values per lease: id, token.
-- Returns the 1-based positions of the leases not held. A held job missing
-- from running (an index edited by hand) is put back in it.
local ARG_LEASE = ARG_OWN
local ARG_LEASES = ARG_OWN + 1
local LEASE_ID, LEASE_TOKEN, LEASE_WIDTH = 0, 1, 2

local now = now_us()
local deadline = fmt(now + tonumber(ARGV[ARG_LEASE]))
local ids = {}
for i = ARG_LEASES, #ARGV, LEASE_WIDTH do ids[#ids + 1] = ARGV[i + LEASE_ID] end
local states = read('HMGET', K_STATE, unpack(ids))
local lost, za = {}, {}
for k, id in ipairs(ids) do
  local s, _, _, _, t = header(states[k])
  if s == 'R' and t == ARGV[ARG_LEASES + LEASE_WIDTH * (k - 1) + LEASE_TOKEN] then
    za[#za + 1] = deadline
    za[#za + 1] = id
  else
    lost[#lost + 1] = k
  end
end
if #za > 0 then
  guard()
  redis.call('ZADD', K_RUNNING, unpack(za))
end
return lost
