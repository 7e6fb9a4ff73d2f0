-- A workflow's record and its steps. ARGV after the common ones: the
-- workflow id. Returns {} if there is no such workflow, else its name,
-- kind, total, pending, completed, failed and cancelled, then per step
-- still kept (in the order stored) its id, state, JSON and what it waits
-- for (`deps`: '<jobs still waited for>|<due>', '' once it waits no more).
local ARG_WF = ARG_OWN

local wf = ARGV[ARG_WF]
local wk = PREFIX .. 'wf:' .. wf
local fields = { 'name', 'kind', 'total', 'pending', 'completed', 'failed', 'cancelled' }
local rec = read('HMGET', wk, unpack(fields))
if not rec[1] then return {} end
local out = {}
for i = 1, #fields do out[i] = rec[i] or '0' end
local ids = read('ZRANGE', PREFIX .. 'wfjobs:' .. wf, 0, -1)
for i = 1, #ids, 1000 do
  local part = { unpack(ids, i, math.min(i + 999, #ids)) }
  local states = read('HMGET', K_STATE, unpack(part))
  local bodies = read('HMGET', K_JOBS, unpack(part))
  local waits = read('HMGET', PREFIX .. 'deps', unpack(part))
  for j, id in ipairs(part) do
    if states[j] and bodies[j] then
      out[#out + 1] = id
      out[#out + 1] = states[j]
      out[#out + 1] = bodies[j]
      out[#out + 1] = waits[j] or ''
    end
  end
end
return out
