-- Fails a reserved job whose JSON the worker could not read, if its state
-- is still the one handed out. ARGV after the common ones: id, that state,
-- the key at fault, what is wrong. Returns 1 if the job was failed, else 0.
local ARG_ID, ARG_SEEN, ARG_KEY, ARG_REASON = ARG_OWN, ARG_OWN + 1, ARG_OWN + 2, ARG_OWN + 3

local id = ARGV[ARG_ID]
local v = read('HGET', K_STATE, id)
if v ~= ARGV[ARG_SEEN] then return 0 end
local m = meta_of(id)
guard()
if string.sub(v, 1, 1) == 'R' then ran(m, -1) end
local now = now_us()
local fin = {}
quarantine(id, v, ARGV[ARG_KEY], ARGV[ARG_REASON], now, fin)
-- The state was counted as what it says: no recount needed for this one.
dirty = false
finished(fin, now)
flush_counts()
flush_active()
publish()
return 1
