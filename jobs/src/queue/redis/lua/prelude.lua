-- Shared by every queue script: the keys, the common arguments, the one
-- parser and builder of a job's state, and the helpers that keep the
-- indexes and the counts in step. Stitched in front of each script at load
-- time (scripts.rs). The state format is documented in record.rs, whose
-- parser accepts exactly what `header` accepts.
--
-- A Redis script that fails half-way is not rolled back: every write before
-- the failing command stays. So each script reads and computes first (with
-- `read`, whose failure names the key), then calls `guard`, which checks
-- the type of every key of the queue that no read of the same call already
-- showed, and the values `INCRBY`/`HINCRBY` will work on, and only then
-- writes.

-- The prelude is loaded two ways (scripts.rs). On Redis 7 and later, once,
-- as the top of a function library whose functions are the scripts: the
-- helpers' closures are made at load time, not on every call (making the
-- prelude's seventy-odd closures was most of a small call's cost). Before
-- Redis 7, in front of each script's own file, run whole on every call.
-- Either way a call starts with `begin`, which takes the call's keys and
-- arguments and resets the state kept per call (the locals declared bare
-- below; their initial values are in `begin`, at the end).
local KEYS, ARGV

-- The keys, the channels and the default queue's name are not locals: each
-- line `--! NAME = EXPR` below makes scripts.rs write EXPR in place of every
-- NAME when it joins the scripts.
--! K_JOBS = KEYS[1]
--! K_STATE = KEYS[2]
--! K_READY = KEYS[3]
--! K_DELAYED = KEYS[4]
--! K_RUNNING = KEYS[5]
--! K_DONE = KEYS[6]
--! K_SEQ = KEYS[7]
--! K_COUNTS = KEYS[8]
-- Flow control (see the key layout in mod.rs).
--! K_META = KEYS[9]
--! K_QUEUES = KEYS[10]
--! K_PAUSED = KEYS[11]
--! K_ACTIVE = KEYS[12]
--! K_WAKES = KEYS[13]
--! K_UNIQUE = KEYS[14]
--! K_KEYS = KEYS[15]
--! DEFAULT_QUEUE = 'default'
-- The wake channel and the events channel (the first two common arguments).
--! CHANNEL = ARGV[1]
--! EVENTS = ARGV[2]
-- `jobs:{NAME}:`, the start of the keys made per named queue or limit key
-- (all in the same hash slot as the fixed ones).
local PREFIX

-- ARGV positions every queue script shares; its own arguments start at ARG_OWN.
local ARG_MAX_FINISHED, ARG_FINISHED_TTL, ARG_OWN = 3, 4, 5
local MAXF, TTL

-- The counts hash holds this field while its figures may be off (a job
-- whose state was edited by hand was quarantined): `counts` recounts first.
local DIRTY = '!'

-- (Tables built in `begin` cost every call of every script: the lookups
-- below are functions or are built on first use.)
-- Whether a status letter is final (the job will not run again).
local function final(s) return s == 'C' or s == 'F' or s == 'X' or s == 'E' end
local U32_MAX = '4294967295'

-- Integers as text without going through floating-point formatting.
local function fmt(x) return string.format('%d', x) end

-- A decimal field that fits a u32 (attempts, max retries).
local function u32(x) return #x < 10 or (#x == 10 and x <= U32_MAX) end

-- The header of a state (see record.rs), or nil if it does not parse or a
-- number is out of range: status, rank, attempts, max retries, token,
-- started, completed, and the position where the patches start. (On the
-- hot path of reserve and finish: the status letters as a character class,
-- the common short numbers checked by length alone.)
-- (`string.match`, set by `begin`: a library's top may not read the
-- globals at load time.)
local match
local function header(v)
  if not v then return nil end
  local s, r, a, m, t, st, co, pos =
    match(v, '^([PRCFTXE])([0-3])|(%d+)|(%d+)|(%d+)|(%d*)|(%d*)|()')
  if s and (#a < 10 or u32(a)) and (#m < 10 or u32(m)) and #t < 20 and #st < 17 and #co < 17 then
    return s, r, a, m, t, st, co, pos
  end
  return nil
end

-- The same as a table (`p`: the patches), for the scripts off the hot path.
local function parse(v)
  local s, r, a, m, t, st, co, pos = header(v)
  if not s then return nil end
  return { s = s, r = r, a = a, m = m, t = t, st = st, co = co, p = string.sub(v, pos) }
end

-- The one builder of a state.
local function build(s, r, a, m, t, st, co, p)
  return s .. r .. '|' .. a .. '|' .. m .. '|' .. t .. '|' .. st .. '|' .. co .. '|' .. p
end
local function state(h) return build(h.s, h.r, h.a, h.m, h.t, h.st, h.co, h.p) end

-- Why a state is refused by `header` (the slow path: for error messages).
local function why(v)
  if not v then return 'there is no state' end
  local s, r, a, m, t, st, co =
    string.match(v, '^(.)(.)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|')
  if not s then return 'the state does not parse' end
  if not string.match(s, '^[PRCFTXE]$') then return 'unknown status letter ' .. string.format('%q', s) end
  if not string.match(r, '^[0-3]$') then return 'unknown priority rank ' .. string.format('%q', r) end
  local function int(name, x, digits, empty)
    if x == '' and empty then return nil end
    if not string.match(x, '^%d+$') then return name .. ' ' .. string.format('%q', x) .. ' is not a number' end
    if digits == 'u32' then
      if not u32(x) then return name .. ' ' .. x .. ' is out of range (at most ' .. U32_MAX .. ')' end
    elseif #x > digits then
      return name .. ' ' .. x .. ' is out of range (at most ' .. digits .. ' digits)'
    end
    return nil
  end
  return int('attempts', a, 'u32') or int('max retries', m, 'u32') or int('token', t, 19)
    or int('start time', st, 16, true) or int('finish time', co, 16, true)
    or 'the state does not parse'
end

-- A patch (appended to a state): fields laid over the job's JSON when read.
local function patch(fields) return '\31' .. cjson.encode(fields) end
local function failure(msg, kind, retryable)
  return patch({
    last_error = msg,
    result = { success = false, error = msg, error_type = kind, retryable = retryable },
  })
end

-- The failed attempts' errors a state keeps (MAX_ATTEMPT_ERRORS in job.rs):
-- each is a patch starting `{"attempt":N,"at_us":T,` (the attempt number
-- and when it ended, written by the scripts in front of the patch the
-- worker sent), read back by record.rs into `Job::errors`.
--! MAX_ERRORS = 25
--! ERROR_MARK = '\31{"attempt":'
-- `p` (a patch without its separator: a JSON object, or '') as the patch
-- of failed attempt `a` that ended at `at` (µs, as text).
local function attempt_patch(p, a, at)
  local head = '{"attempt":' .. a .. ',"at_us":' .. at
  if p == '' or p == '{}' then return head .. '}' end
  return head .. ',' .. string.sub(p, 2)
end
-- `patches` with its oldest attempt errors dropped, so that one more fits
-- within MAX_ERRORS. (For failed attempts only: off the path of a success.)
local function room_for_error(patches)
  local _, n = string.gsub(patches, ERROR_MARK, '')
  while n >= MAX_ERRORS do
    local s = string.find(patches, ERROR_MARK, 1, true)
    local e = string.find(patches, '\31', s + 1, true)
    patches = string.sub(patches, 1, s - 1) .. (e and string.sub(patches, e) or '')
    n = n - 1
  end
  return patches
end

-- Attempts that ended, per minute, for `throughput`: the string key
-- `stat:<minute since the epoch>` holds processed * 2^32 + failed, so one
-- INCRBY counts a whole batch; it expires after 25 hours. A value that is
-- no number (edited by hand) starts again from this batch.
--! STAT_TTL = 90000
local function count_attempts(processed, failed, now)
  if processed == 0 then return end
  local k = PREFIX .. 'stat:' .. string.format('%d', math.floor(now / 60000000))
  local inc = processed * 4294967296 + failed
  local v = redis.pcall('INCRBY', k, string.format('%d', inc))
  if type(v) ~= 'number' then
    redis.call('SET', k, string.format('%d', inc), 'EX', STAT_TTL)
  elseif v == inc then
    -- The minute's first batch made the key.
    redis.call('EXPIRE', k, STAT_TTL)
  end
end

local function num(s)
  if #s == 1 then return string.byte(s) - 48 end
  return tonumber(s)
end
local function inc(s)
  local n = num(s) + 1
  if n < 10 then return string.char(48 + n) end
  return fmt(n)
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local BAND = 281474976710656
local function back(rank, seq) return fmt((num(rank) * 2 + 1) * BAND + seq) end
local function front(rank, seq) return fmt((num(rank) * 2 + 1) * BAND - seq) end

-- What a job's key must hold (or not exist): the fixed keys, then those
-- of flow control, in pairs.
-- (The queues set is checked by the scripts that write it, with `touch`.)
local FIXED_TYPES, FLOW_TYPES
-- The type of every key met so far (built on first use; `touch` adds the
-- keys made per named queue or limit key).
local types_of
local function types()
  if not types_of then
    types_of = {}
    for _, list in ipairs({ FIXED_TYPES, FLOW_TYPES }) do
      for i = 1, #list, 2 do types_of[list[i]] = list[i + 1] end
    end
    types_of[K_QUEUES] = 'set'
  end
  return types_of
end
local function refuse(msg) error({ err = 'WRONGTYPE ' .. msg }) end
local function wrong(k, t)
  local names = { hash = 'a hash', zset = 'a sorted set', list = 'a list', string = 'a string',
    set = 'a set', stream = 'a stream' }
  refuse(k .. ' holds ' .. (names[t] or t) .. ', not ' .. names[types()[k]] ..
    '; nothing was changed (delete or restore the key, then call repair)')
end
-- Whether any key of flow-control state exists: the meta of jobs with
-- settings, paused queues, running counts, rate-limit wakes, unique locks,
-- the keys made per limit key. Without any (only the default queue's jobs,
-- no limits, no pause), the scripts skip all flow bookkeeping, for one
-- EXISTS per call. Anything that configures flow control writes one of
-- these keys before it takes effect: a job with settings its meta, a pause
-- the paused set, a queue concurrency limit the counting mark in active.
-- (Asking which of them exist costs more than reading them: an EXISTS
-- that names each key a different power of two times, so that its count
-- tells, takes longer than the reads it saves.)
local flow
local function any_flow()
  if flow == nil then
    flow = redis.call('EXISTS', K_META, K_PAUSED, K_ACTIVE, K_WAKES, K_UNIQUE, K_KEYS) > 0
  end
  return flow
end
-- Keys a successful read of this script call showed to be of their type
-- (or absent), so `guard` need not ask again.
local verified, guarded
-- Checks every key of the queue before the first write of a script, so
-- that no command can fail half-way on a key of the wrong type, a sequence
-- that is no integer or a count that is none. Raises an error naming the key
-- (and nothing was written). Once per script call.
-- (The flow-control keys are checked only if one of them exists.)
local function guard()
  if guarded then return end
  local function check(list)
    for i = 1, #list, 2 do
      local k = list[i]
      -- The sequence and the counts are checked below.
      if not verified[k] and k ~= K_SEQ and k ~= K_COUNTS then
        local t = redis.call('TYPE', k)['ok']
        if t ~= 'none' and t ~= list[i + 1] then wrong(k, t) end
      end
    end
  end
  check(FIXED_TYPES)
  if any_flow() then
    -- Those not read yet, often absent: one EXISTS for all first.
    local unread = {}
    for i = 1, #FLOW_TYPES, 2 do
      if not verified[FLOW_TYPES[i]] then unread[#unread + 1] = FLOW_TYPES[i] end
    end
    if #unread > 0 and redis.call('EXISTS', unpack(unread)) > 0 then check(FLOW_TYPES) end
  end
  local seq = redis.pcall('GET', K_SEQ)
  if type(seq) == 'table' and seq.err then wrong(K_SEQ, redis.call('TYPE', K_SEQ)['ok']) end
  if seq and not (match(seq, '^%d+$') and #seq <= 17) then
    refuse(K_SEQ .. ' holds ' .. string.format('%q', seq) .. ', not a sequence number; nothing was changed')
  end
  local counts = redis.pcall('HGETALL', K_COUNTS)
  if counts.err then wrong(K_COUNTS, redis.call('TYPE', K_COUNTS)['ok']) end
  for i = 2, #counts, 2 do
    if not (match(counts[i], '^%-?%d+$') and #counts[i] <= 17) then
      refuse(K_COUNTS .. ' field ' .. counts[i - 1] .. ' holds ' .. string.format('%q', counts[i]) ..
        ', not a count; nothing was changed (delete the key: counts are then recounted)')
    end
  end
  guarded = true
end

-- A read that, if it fails (a key of the wrong type), fails with the
-- guard's error naming the key instead of Redis's own; if it succeeds, the
-- guard need not check its key again. Costs nothing more than `redis.call`.
local function read(cmd, k, ...)
  local reply = redis.pcall(cmd, k, ...)
  if type(reply) == 'table' and reply.err then
    guard()
    -- A key the guard does not check (the queues set, a key made per
    -- queue or limit key).
    local t = types()[k]
    if t then
      local kt = redis.call('TYPE', k)['ok']
      if kt ~= 'none' and kt ~= t then wrong(k, kt) end
    end
    error(reply)
  end
  -- Every read but EXISTS fails on a key of another type.
  if cmd ~= 'EXISTS' then verified[k] = true end
  return reply
end

-- Checks, before the first write to it, that a key made per named queue or
-- limit key (`ready:<queue>`, `held:<key>`, ..) holds `t` or nothing.
-- Those keys are met as a script goes (a job's queue, its limit keys), so
-- a script that meets a wrong one after writing keeps the writes before:
-- each step of a script is complete on its own (e.g. jobs reserved before
-- are running, and recovered when their lease runs out).
local function touch(k, t)
  if verified[k] then return end
  types()[k] = t
  local kt = redis.call('TYPE', k)['ok']
  if kt ~= 'none' and kt ~= t then wrong(k, kt) end
  verified[k] = true
end
-- Names the type such a key must hold, for a read about to show it (the
-- read names the key if it fails, and the guard need not ask then).
local function expect(k, t)
  if not verified[k] then types()[k] = t end
end
-- The keys made per limit key, added to the keys set once per call.
local kept
local function keep(k)
  if not kept[k] then
    kept[k] = true
    redis.call('SADD', K_KEYS, k)
  end
end

-- The meta of jobs with settings other than the defaults: a JSON object
-- written at enqueue (record.rs, `meta`), never changed: `q` the named
-- queue (absent: the default one), `c` {key, max} the concurrency limit,
-- `r` {key, max, period us} the rate limit, `u` {key, statuses, period us
-- or 0} the unique settings. Jobs without one pay nothing while no
-- flow-control key exists (`any_flow`); once one does, their metas are
-- read (and found missing) with those of the others.
local has_meta
local function any_meta()
  if has_meta == nil then has_meta = any_flow() end
  return has_meta
end
local function decode_meta(v)
  if not v or v == '' then return nil end
  -- A job with a named queue and no other setting (as record.rs writes it).
  local q = match(v, '^{"q":"([%w_.:-]*)"}$')
  if q then return { q = q } end
  local ok, m = pcall(cjson.decode, v)
  if ok and type(m) == 'table' then return m end
  return nil
end
-- The metas of `ids`, by position (nil where none).
local function metas(ids)
  local out = {}
  if #ids == 0 or not any_meta() then return out end
  local raw = read('HMGET', K_META, unpack(ids))
  for i = 1, #ids do
    if raw[i] then out[i] = decode_meta(raw[i]) end
  end
  return out
end
local function meta_of(id)
  if not any_meta() then return nil end
  return decode_meta(read('HGET', K_META, id))
end
local function qname(m) return (m and m.q) or DEFAULT_QUEUE end
-- The ready sorted set of a named queue: `ready` for the default queue
-- (`reading`: for a read first, which checks its type).
local function ready_key(q, reading)
  if q == DEFAULT_QUEUE then return K_READY end
  local k = PREFIX .. 'ready:' .. q
  if reading then expect(k, 'zset') else touch(k, 'zset') end
  return k
end
-- Per limit key: the jobs a concurrency limit holds back (score: their
-- ready score), those a rate limit holds back, and the starts in the rate
-- window (score: start time).
local function held_key(k) return PREFIX .. 'held:' .. k end
local function rheld_key(k) return PREFIX .. 'rheld:' .. k end
local function rate_key(k) return PREFIX .. 'rate:' .. k end
-- Removes a waiting job from every index it may wait in.
local function unwait(id, m)
  redis.call('ZREM', ready_key(qname(m)), id)
  redis.call('ZREM', K_DELAYED, id)
  if m and m.c then
    local hk = held_key(m.c[1])
    touch(hk, 'zset')
    redis.call('ZREM', hk, id)
  end
  if m and m.r then
    local hk = rheld_key(m.r[1])
    touch(hk, 'zset')
    redis.call('ZREM', hk, id)
  end
end

-- Events for `subscribe`, published as one message per call (a JSON array
-- of [kind, id, name, progress JSON]) on the events channel, and only
-- while someone listens there.
local listening
local function listen()
  if listening == nil then listening = redis.call('PUBSUB', 'NUMSUB', EVENTS)[2] > 0 end
  return listening
end
-- A job's name, from its JSON (whose first fields are `id` and `name`).
local function name_of(body)
  if not body then return '' end
  local n = match(body, '^{"id":"[^"]*","name":"([^"\\]*)"')
  if n then return n end
  local ok, j = pcall(cjson.decode, body)
  if ok and type(j) == 'table' and type(j.name) == 'string' then return j.name end
  return ''
end
local evs
local function event(kind, id, body, progress)
  evs = evs or {}
  evs[#evs + 1] = { kind, id, name_of(body), progress }
end
-- The event of a finished attempt's new status.
local function event_of(s)
  return ({ C = 'completed', T = 'retrying', F = 'failed', X = 'cancelled', E = 'expired',
    S = 'snoozed' })[s]
end

local delta
local function count(s, n) delta[s] = (delta[s] or 0) + n end
local dirty
local function flush_counts()
  for s, n in pairs(delta) do
    if n ~= 0 then redis.call('HINCRBY', K_COUNTS, s, n) end
  end
  if dirty then redis.call('HSET', K_COUNTS, DIRTY, '1') end
end
-- Calls a variadic command with the items of `list` appended, in chunks
-- (Lua's unpack has a limit).
local function variadic(cmd, key, list)
  for i = 1, #list, 4000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 3999, #list)))
  end
end
-- Workflows and batches (see the key layout in mod.rs). A step is a job
-- whose meta has `w` = {workflow id, step name, 1 if it runs always}; a
-- job without it pays nothing here. While a step waits for other jobs, it
-- is `P` in no index and `deps` holds `<jobs still waited for>|<due us>`
-- for it; `kids:<id>` lists the steps waiting for job `id`, `dres:<id>`
-- what the finished dependencies of step `id` left; `wf:<wf>` is the
-- workflow's record, `wfjobs:<wf>` its steps (score: the order stored),
-- `workflows` the ids of those stored.
local function wf_key(wf) return PREFIX .. 'wf:' .. wf end
local function wfjobs_key(wf) return PREFIX .. 'wfjobs:' .. wf end
local function kids_key(id) return PREFIX .. 'kids:' .. id end
local function dres_key(id) return PREFIX .. 'dres:' .. id end
local function deps_key() return PREFIX .. 'deps' end
local function workflows_key() return PREFIX .. 'workflows' end
-- A step left the queue (deleted, evicted, purged): its dependency state
-- goes, and its workflow's record once none of its steps is left.
local function forget_step(id, m)
  local w = m.w
  redis.call('HDEL', deps_key(), id)
  redis.call('DEL', dres_key(id), kids_key(id))
  local zk = wfjobs_key(w[1])
  redis.call('ZREM', zk, id)
  if redis.call('ZCARD', zk) == 0 then
    redis.call('DEL', zk, wf_key(w[1]))
    redis.call('SREM', workflows_key(), w[1])
  end
end
-- The field of a workflow's record that counts a final status.
local function wf_field(s)
  if s == 'C' then return 'completed' elseif s == 'X' then return 'cancelled'
  elseif s == 'F' or s == 'E' then return 'failed' end
  return nil
end

-- The retention entry of a finished job: status letter, id, finish time.
local function done_entry(s, id, co) return s .. id .. '|' .. co end
-- Records finished jobs in the retention list, then keeps at most MAXF of
-- them (and none older than TTL), deleting the jobs dropped.
local function finished(entries, now)
  if #entries > 0 then variadic('LPUSH', K_DONE, entries) end
  local gone = {}
  local over = redis.call('LLEN', K_DONE) - MAXF
  if over > 0 then
    gone = redis.call('RPOP', K_DONE, math.min(over, 1000))
  end
  if TTL > 0 then
    for _ = 1, 1000 do
      local last = redis.call('LINDEX', K_DONE, -1)
      if not last then break end
      local t = tonumber(string.match(last, '|(%d+)$'))
      if t ~= nil and t > now - TTL then break end
      redis.call('RPOP', K_DONE)
      gone[#gone + 1] = last
    end
  end
  if #gone > 0 then
    local ids = {}
    for _, e in ipairs(gone) do
      local id = string.match(e, '^.([^|]*)')
      if id and id ~= '' then ids[#ids + 1] = id end
      local s = string.sub(e, 1, 1)
      if final(s) then count(s, -1) else dirty = true end
    end
    if #ids > 0 and any_meta() then
      local ms = {}
      for i = 1, #ids, 1000 do
        local part = metas({ unpack(ids, i, math.min(i + 999, #ids)) })
        for j = 1, math.min(1000, #ids - i + 1) do ms[i + j - 1] = part[j] end
      end
      for i, id in ipairs(ids) do
        local m = ms[i]
        if m and m.w then forget_step(id, m) end
        if m and m.u then
          local lock = redis.call('HGET', K_UNIQUE, m.u[1])
          if lock and string.sub(lock, 1, #id + 1) == id .. '|' then
            redis.call('HDEL', K_UNIQUE, m.u[1])
          end
        end
      end
      variadic('HDEL', K_META, ids)
    end
    variadic('HDEL', K_JOBS, ids)
    variadic('HDEL', K_STATE, ids)
  end
end
local wake
local function woke(due) if wake == nil or due < wake then wake = due end end
local function publish()
  if wake then redis.call('PUBLISH', CHANNEL, fmt(wake)) end
  if evs then redis.call('PUBLISH', EVENTS, cjson.encode(evs)) end
end
-- Puts a waiting job in its queue's ready set (due now) or in delayed.
local function place(id, due, rank, now, q)
  if due > now then
    redis.call('ZADD', K_DELAYED, fmt(due), id)
    woke(due)
  else
    redis.call('ZADD', ready_key(q or DEFAULT_QUEUE), back(rank, redis.call('INCR', K_SEQ)), id)
    woke(0)
  end
end

-- The words of final statuses, as `JobStatus` shows them.
local function status_word(s)
  return ({ C = 'completed', F = 'failed', X = 'cancelled', E = 'expired' })[s] or 'failed'
end
-- The error of a step cancelled because its dependency `name` ended `s`
-- (`cancelled_by` in workflow.rs).
local function cancelled_by(name, s) return 'dependency `' .. name .. '` ended ' .. status_word(s) end
-- An entry of `dres:<id>` (record.rs, `dependency_result`): what dependency
-- `id` (step `name`, final status `s`, patches `p`) left.
local function dres_entry(s, id, name, p) return s .. id .. '|' .. #name .. '|' .. name .. p end
-- A step ended (`d`: {id, wf, name, s = its final status letter, p = its
-- patches}): counts it in its workflow and resolves the steps waiting for
-- it — each records the result, and becomes ready once its last
-- dependency ended, or is cancelled (and resolved in turn) if this one
-- did not complete and it does not run always. Finished entries are added
-- to `fin` (for `finished`). Call after `guard`.
local function resolve(d, now, fin)
  local dk = deps_key()
  touch(dk, 'hash')
  local stack = { d }
  while #stack > 0 do
    d = table.remove(stack)
    local wk = wf_key(d.wf)
    local f = wf_field(d.s)
    if f and redis.call('EXISTS', wk) == 1 then
      redis.call('HINCRBY', wk, f, 1)
      if tonumber(redis.call('HGET', wk, 'pending') or '0') > 0 then
        redis.call('HINCRBY', wk, 'pending', -1)
      end
    end
    local kk = kids_key(d.id)
    local kids = redis.call('LRANGE', kk, 0, -1)
    if #kids > 0 then
      redis.call('DEL', kk)
      local states = redis.call('HMGET', K_STATE, unpack(kids))
      local waits = redis.call('HMGET', dk, unpack(kids))
      local ms = metas(kids)
      local entry = dres_entry(d.s, d.id, d.name, d.p)
      for j, child in ipairs(kids) do
        local h, m = parse(states[j]), ms[j]
        local left, due = nil, nil
        if waits[j] then left, due = match(waits[j], '^(%d+)|(%d+)$') end
        if h and left and m and m.w and (h.s == 'P' or h.s == 'T') then
          left = tonumber(left) - 1
          redis.call('RPUSH', dres_key(child), entry)
          if d.s ~= 'C' and m.w[3] ~= 1 then
            redis.call('HDEL', dk, child)
            count(h.s, -1)
            count('X', 1)
            h.s = 'X'
            h.co = fmt(now)
            h.p = h.p .. patch({ last_error = cancelled_by(d.name, d.s) })
            redis.call('HSET', K_STATE, child, state(h))
            fin[#fin + 1] = done_entry('X', child, h.co)
            if listen() then event('cancelled', child, redis.call('HGET', K_JOBS, child)) end
            stack[#stack + 1] = { id = child, wf = m.w[1], name = m.w[2], s = 'X', p = h.p }
          elseif left <= 0 then
            redis.call('HDEL', dk, child)
            place(child, tonumber(due), h.r, now, qname(m))
          else
            redis.call('HSET', dk, child, fmt(left) .. '|' .. due)
          end
        end
      end
    end
  end
end
-- A step's end for `resolve`: its id, meta and new state (table).
local function ended(id, m, h)
  return { id = id, wf = m.w[1], name = m.w[2], s = h.s, p = h.p }
end

-- Running jobs per concurrency key (`c:<key>`) and, once a queue
-- concurrency limit was used (`counting_queues`), per named queue
-- (`q:<queue>`) in the active hash: changes gathered here, written by
-- `flush_active`.
local active
local function bump(f, n) active[f] = (active[f] or 0) + n end
-- The active hash's field that says the running jobs of every named queue
-- are counted. Set by the first reserve under a queue concurrency limit
-- (`count_queues`), which counts the jobs running then; never removed but
-- with the active hash (purge; repair sets it again), so the counts stay
-- right when the limit goes away and comes back.
local COUNTING = '!q'
local counting
local function counting_queues()
  if counting == nil then counting = any_flow() and read('HEXISTS', K_ACTIVE, COUNTING) == 1 end
  return counting
end
-- A job (of meta `m`) starts (n = 1) or stops (n = -1) running.
local function ran(m, n)
  if m and m.c then bump('c:' .. m.c[1], n) end
  if counting_queues() then bump('q:' .. qname(m), n) end
end
-- Hands the `n` earliest jobs a concurrency limit holds back to their
-- queues, at their old place.
local function release_held(k, n)
  local hk = held_key(k)
  expect(hk, 'zset')
  local held = read('ZRANGE', hk, 0, n - 1, 'WITHSCORES')
  if #held == 0 then return end
  local ids = {}
  for i = 1, #held, 2 do ids[#ids + 1] = held[i] end
  local ms = metas(ids)
  for j, id in ipairs(ids) do
    redis.call('ZADD', ready_key(qname(ms[j])), held[2 * j], id)
  end
  redis.call('ZREMRANGEBYRANK', hk, 0, #ids - 1)
  woke(0)
end
local function flush_active()
  for f, n in pairs(active) do
    if n ~= 0 then
      local v = redis.pcall('HINCRBY', K_ACTIVE, f, n)
      if type(v) ~= 'number' then
        -- Not a number (edited by hand): start again from this change.
        v = n
        redis.call('HSET', K_ACTIVE, f, fmt(n))
      end
      if v <= 0 then redis.call('HDEL', K_ACTIVE, f) end
      if n < 0 then
        local name = string.sub(f, 3)
        if string.sub(f, 1, 1) == 'q' then
          -- A worker found the queue full: wake it.
          if redis.call('HDEL', K_ACTIVE, 'f:' .. name) == 1 then woke(0) end
        else
          release_held(name, -n)
        end
      end
    end
  end
  active = {}
end

-- Turns the running counts per named queue on (`COUNTING`), counting the
-- jobs running now: for the first reserve under a queue concurrency limit.
-- O(running jobs), once. Reads first; call before any other write.
local function count_queues()
  if counting_queues() then return end
  local per = {}
  local ids = read('ZRANGE', K_RUNNING, 0, -1)
  for i = 1, #ids, 1000 do
    local part = { unpack(ids, i, math.min(i + 999, #ids)) }
    local states = read('HMGET', K_STATE, unpack(part))
    local ms = metas(part)
    for j = 1, #part do
      if states[j] and string.sub(states[j], 1, 1) == 'R' then
        local q = qname(ms[j])
        per[q] = (per[q] or 0) + 1
      end
    end
  end
  local fields = read('HKEYS', K_ACTIVE)
  guard()
  -- Counts of queues left from before are not to be trusted.
  local stale = {}
  for _, f in ipairs(fields) do
    if string.sub(f, 1, 2) == 'q:' then stale[#stale + 1] = f end
  end
  variadic('HDEL', K_ACTIVE, stale)
  local flat = { COUNTING, '1' }
  for q, n in pairs(per) do
    flat[#flat + 1] = 'q:' .. q
    flat[#flat + 1] = fmt(n)
  end
  redis.call('HSET', K_ACTIVE, unpack(flat))
  counting = true
end

-- Moves due scheduled jobs to their queues' ready sets.
local function promote_due(now)
  local due = read('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, 1000)
  if #due == 0 then return end
  local states = read('HMGET', K_STATE, unpack(due))
  local ms = metas(due)
  guard()
  local keys = {}
  for i = 1, #due do keys[i] = ready_key(qname(ms[i])) end
  local seq = redis.call('INCRBY', K_SEQ, #due) - #due
  local za = {}
  for i, id in ipairs(due) do
    local _, r = header(states[i])
    seq = seq + 1
    -- A job whose state does not parse goes to ready all the same, to be
    -- quarantined by the next reserve.
    local rk = keys[i]
    za[rk] = za[rk] or {}
    local z = za[rk]
    z[#z + 1] = back(r or '1', seq)
    z[#z + 1] = id
  end
  for rk, z in pairs(za) do redis.call('ZADD', rk, unpack(z)) end
  redis.call('ZREM', K_DELAYED, unpack(due))
end

-- Hands jobs a rate limit held back to their queues, at their old place,
-- once the key's window lets the next one start (the wakes sorted set:
-- limit key -> when). Up to the limit's max each time; if more wait, the
-- key wakes again a period later (or earlier, when a reserve holds another
-- job back and knows better).
-- Leaves in `next_rate_wake` the earliest wake left (false: none), or nil
-- where it changed.
local next_rate_wake
local function promote_wakes(now)
  if not any_flow() then
    next_rate_wake = false
    return
  end
  local first = read('ZRANGE', K_WAKES, 0, 0, 'WITHSCORES')
  if not first[2] then
    next_rate_wake = false
    return
  elseif tonumber(first[2]) > now then
    next_rate_wake = tonumber(first[2])
    return
  end
  local keys = read('ZRANGEBYSCORE', K_WAKES, '-inf', now, 'LIMIT', 0, 100)
  guard()
  for _, k in ipairs(keys) do
    local hk = rheld_key(k)
    touch(hk, 'zset')
    local first = redis.call('ZRANGE', hk, 0, 0)
    local m = first[1] and meta_of(first[1])
    local max, period = 1, 1000000
    if m and m.r then max, period = m.r[2], m.r[3] end
    local held = redis.call('ZRANGE', hk, 0, max - 1, 'WITHSCORES')
    local ids = {}
    for i = 1, #held, 2 do ids[#ids + 1] = held[i] end
    local ms = metas(ids)
    for j, id in ipairs(ids) do
      redis.call('ZADD', ready_key(qname(ms[j])), held[2 * j], id)
    end
    if #ids > 0 then redis.call('ZREMRANGEBYRANK', hk, 0, #ids - 1) end
    if redis.call('ZCARD', hk) > 0 then
      redis.call('ZADD', K_WAKES, fmt(now + period), k)
    else
      redis.call('ZREM', K_WAKES, k)
    end
  end
end

-- Fails a job whose record is inconsistent or corrupt, so that it is never
-- left stuck: `key` is the key at fault, `reason` what is wrong with it, `v`
-- its current state (or nil). Its previous status letter is counted out when
-- it is known; the counts are marked for a recount either way, since a state
-- edited by hand was not counted as what it says. Call after `guard`; the
-- finished entry is added to `fin` (for `finished`).
local function quarantine(id, v, key, reason, now, fin)
  local msg = 'corrupt job record ' .. key .. ' field ' .. id .. ': ' .. reason
  local nows = fmt(now)
  local s, r, a, m, t, st, co, pos = header(v)
  local new
  if s then
    count(s, -1)
    if st == '' then st = nows end
    new = build('F', r, a, m, t, st, nows, string.sub(v, pos) .. failure(msg, 'CorruptRecord', false))
  else
    new = build('F', '1', '0', '0', '0', nows, nows, failure(msg, 'CorruptRecord', false))
  end
  count('F', 1)
  dirty = true
  redis.call('HSET', K_STATE, id, new)
  unwait(id, meta_of(id))
  redis.call('ZREM', K_RUNNING, id)
  fin[#fin + 1] = done_entry('F', id, nows)
end

-- Recomputes the counts hash from every job's state (O(jobs): the repair
-- for counts that drifted). Call after `guard`.
local function recount()
  local c = { P = 0, R = 0, C = 0, F = 0, T = 0, X = 0, E = 0 }
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', K_STATE, cursor, 'COUNT', 1000)
    cursor = page[1]
    local kv = page[2]
    for i = 2, #kv, 2 do
      local s = header(kv[i])
      if s then c[s] = c[s] + 1 end
    end
  until cursor == '0'
  redis.call('DEL', K_COUNTS)
  local flat = {}
  for s, n in pairs(c) do
    if n > 0 then
      flat[#flat + 1] = s
      flat[#flat + 1] = fmt(n)
    end
  end
  if #flat > 0 then redis.call('HSET', K_COUNTS, unpack(flat)) end
  delta = {}
  dirty = false
end

-- Starts a call: its keys and arguments, and the state kept per call
-- afresh (in a function library the locals above outlive a call).
local function begin(keys, args)
  KEYS, ARGV = keys, args
  match = string.match
  PREFIX = string.sub(K_READY, 1, #K_READY - 5)
  MAXF = tonumber(ARGV[ARG_MAX_FINISHED])
  TTL = tonumber(ARGV[ARG_FINISHED_TTL])
  FIXED_TYPES = { K_JOBS, 'hash', K_STATE, 'hash', K_READY, 'zset', K_DELAYED, 'zset',
    K_RUNNING, 'zset', K_DONE, 'list', K_SEQ, 'string', K_COUNTS, 'hash' }
  FLOW_TYPES = { K_META, 'hash', K_PAUSED, 'set', K_ACTIVE, 'hash', K_WAKES, 'zset',
    K_UNIQUE, 'hash', K_KEYS, 'set' }
  types_of, flow, has_meta, listening, evs, wake, counting, next_rate_wake =
    nil, nil, nil, nil, nil, nil, nil, nil
  verified, kept, delta, active = {}, {}, {}, {}
  guarded, dirty = false, false
end
