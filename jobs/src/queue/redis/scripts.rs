//! The Lua scripts that make each state change of a job atomic.
//!
//! Every script starts with [`PRELUDE`]: the record header parser and
//! helpers. See the module docs of [`super`] for the record format and the
//! key layout. Times are microseconds of the Redis server's clock (`TIME`),
//! so the leases of workers on different machines are compared on one clock.

use redis::Script;

/// Helpers shared by all scripts.
const PRELUDE: &str = r#"
local function parse(v)
  if not v then return nil end
  local s, r, a, m, t, st, co, pos =
    string.match(v, '^(%u)(%d)|(%d+)|(%d+)|(%d+)|(%d*)|(%d*)|()')
  if not s then return nil end
  return { s = s, r = r, a = a, m = m, t = t, st = st, co = co, rest = string.sub(v, pos) }
end
-- Integers as text without going through floating-point formatting.
local function fmt(x) return string.format('%d', x) end
local function num(s)
  if #s == 1 then return string.byte(s) - 48 end
  return tonumber(s)
end
local function inc(s)
  local n = num(s) + 1
  if n < 10 then return string.char(48 + n) end
  return fmt(n)
end
local function header(h)
  return h.s .. h.r .. '|' .. h.a .. '|' .. h.m .. '|' .. h.t .. '|' .. h.st .. '|' .. h.co .. '|'
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local BAND = 281474976710656
local function back(rank, seq) return fmt((num(rank) * 2 + 1) * BAND + seq) end
local function front(rank, seq) return fmt((num(rank) * 2 + 1) * BAND - seq) end
local FINAL = { C = true, F = true, X = true, E = true }
local delta = {}
local function count(s, n) delta[s] = (delta[s] or 0) + n end
local function flush_counts(key)
  for s, n in pairs(delta) do
    if n ~= 0 then redis.call('HINCRBY', key, s, n) end
  end
end
-- Calls a variadic command with the items of `list` appended, in chunks
-- (Lua's unpack has a limit).
local function variadic(cmd, key, list, step)
  for i = 1, #list, step do
    redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
end
-- The retention entry of a finished job: status letter, id, finish time.
local function done_entry(s, id, co) return s .. id .. '|' .. co end
-- Records finished jobs in the retention list, then keeps at most `maxf`
-- of them (and none older than `ttl` us), deleting the records dropped.
local function finished(kjobs, kdone, entries, maxf, ttl, now)
  if #entries > 0 then variadic('LPUSH', kdone, entries, 4000) end
  local gone = {}
  local over = redis.call('LLEN', kdone) - maxf
  if over > 0 then
    gone = redis.call('RPOP', kdone, math.min(over, 1000))
  end
  if ttl > 0 then
    for _ = 1, 1000 do
      local last = redis.call('LINDEX', kdone, -1)
      if not last then break end
      local t = tonumber(string.match(last, '|(%d+)$'))
      if t ~= nil and t > now - ttl then break end
      redis.call('RPOP', kdone)
      gone[#gone + 1] = last
    end
  end
  if #gone > 0 then
    local ids = {}
    for i, e in ipairs(gone) do
      ids[i] = string.match(e, '^.([^|]*)')
      count(string.sub(e, 1, 1), -1)
    end
    variadic('HDEL', kjobs, ids, 4000)
  end
end
"#;

/// KEYS: jobs, ready, delayed, seq, counts.
/// ARGV: channel, then per job: id, record, due (us, 0 = now), rank.
/// Returns `{'dup', id}` (and stores nothing) or `{'ok'}`.
const ENQUEUE: &str = r#"
for i = 2, #ARGV, 4 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then return { 'dup', ARGV[i] } end
end
local now = now_us()
local n = (#ARGV - 1) / 4
local seq = redis.call('INCRBY', KEYS[4], n) - n
local wake = nil
local hs, ready, delayed = {}, {}, {}
for i = 2, #ARGV, 4 do
  local id, rec, due, rank = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  hs[#hs + 1] = id
  hs[#hs + 1] = rec
  if due > now then
    delayed[#delayed + 1] = ARGV[i + 2]
    delayed[#delayed + 1] = id
    if wake == nil or due < wake then wake = due end
  else
    seq = seq + 1
    ready[#ready + 1] = back(rank, seq)
    ready[#ready + 1] = id
    wake = 0
  end
  count(string.sub(rec, 1, 1), 1)
end
variadic('HSET', KEYS[1], hs, 4000)
variadic('ZADD', KEYS[2], ready, 4000)
variadic('ZADD', KEYS[3], delayed, 4000)
flush_counts(KEYS[5])
if wake then redis.call('PUBLISH', ARGV[1], fmt(wake)) end
return { 'ok' }
"#;

/// KEYS: jobs, ready, delayed, running, seq, counts, done.
/// ARGV: max, lease (us), max finished, finished ttl (us).
/// Moves due scheduled jobs to ready, then reserves up to `max` ready jobs.
/// Returns `{next due (us, -1 if none), id, record, id, record...}`; a
/// record whose header does not parse is failed on the spot and not
/// returned.
const RESERVE: &str = r#"
local now = now_us()
local max, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local seq = redis.call('INCRBY', KEYS[5], #due) - #due
  local recs = redis.call('HMGET', KEYS[1], unpack(due))
  local za = {}
  for i, id in ipairs(due) do
    local h = parse(recs[i])
    seq = seq + 1
    za[#za + 1] = back(h and h.r or '1', seq)
    za[#za + 1] = id
  end
  redis.call('ZADD', KEYS[2], unpack(za))
  redis.call('ZREM', KEYS[3], unpack(due))
end
local out = { '-1' }
local popped = redis.call('ZPOPMIN', KEYS[2], max)
if #popped > 0 then
  local nows, deadline = fmt(now), fmt(now + lease)
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  local recs = redis.call('HMGET', KEYS[1], unpack(ids))
  local tok = redis.call('INCRBY', KEYS[5], #ids) - #ids
  local hs, za, failed = {}, {}, {}
  for i, id in ipairs(ids) do
    local v = recs[i]
    if v then
      local h = parse(v)
      if not h then
        local msg = 'corrupt job record ' .. KEYS[1] .. ' field ' .. id ..
          ': the record header does not parse'
        local co = nows
        hs[#hs + 1] = id
        hs[#hs + 1] = 'F1|1|0|0|' .. co .. '|' .. co .. '|' .. v ..
          '\31{"last_error":"' .. msg .. '","result":{"success":false,"error":"' .. msg ..
          '","error_type":"CorruptRecord","retryable":false}}'
        failed[#failed + 1] = done_entry('F', id, co)
        count('P', -1)
        count('F', 1)
      elseif h.s == 'P' or h.s == 'T' then
        tok = tok + 1
        count(h.s, -1)
        count('R', 1)
        h.s = 'R'
        h.a = inc(h.a)
        h.t = fmt(tok)
        h.st = nows
        h.co = ''
        local rec = header(h) .. h.rest
        hs[#hs + 1] = id
        hs[#hs + 1] = rec
        za[#za + 1] = deadline
        za[#za + 1] = id
        out[#out + 1] = id
        out[#out + 1] = rec
      end
    end
  end
  if #hs > 0 then redis.call('HSET', KEYS[1], unpack(hs)) end
  if #za > 0 then redis.call('ZADD', KEYS[4], unpack(za)) end
  if #failed > 0 then
    finished(KEYS[1], KEYS[7], failed, tonumber(ARGV[3]), tonumber(ARGV[4]), now)
  end
  flush_counts(KEYS[6])
end
local nd = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if nd[2] then out[1] = nd[2] end
return out
"#;

/// KEYS: jobs, running. ARGV: lease (us), then id, token pairs.
/// Extends held leases; returns the 1-based positions of those not held.
const HEARTBEAT: &str = r#"
local now = now_us()
local lease = tonumber(ARGV[1])
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local recs = redis.call('HMGET', KEYS[1], unpack(ids))
local lost, za = {}, {}
local deadline = fmt(now + lease)
for k, id in ipairs(ids) do
  local h = parse(recs[k])
  if h and h.s == 'R' and h.t == ARGV[2 * k + 1] then
    za[#za + 1] = deadline
    za[#za + 1] = id
  else
    lost[#lost + 1] = k
  end
end
if #za > 0 then redis.call('ZADD', KEYS[2], 'XX', unpack(za)) end
return lost
"#;

/// KEYS: jobs, ready, delayed, running, done, seq, counts.
/// ARGV: channel, max finished, finished ttl (us, 0 = none), then per
/// entry 9 values: id, token, new status, patch ('' = none), retry at (us),
/// next id ('' = none), next record, next due (us), next rank.
/// Returns 1 per entry whose lease was held (and is now settled), else 0.
const FINISH: &str = r#"
local now = now_us()
local maxf, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local res = {}
local wake = nil
local function place(id, due, rank)
  if due > now then
    redis.call('ZADD', KEYS[3], fmt(due), id)
    if wake == nil or due < wake then wake = due end
  else
    redis.call('ZADD', KEYS[2], back(rank, redis.call('INCR', KEYS[6])), id)
    wake = 0
  end
end
local ids = {}
for b = 4, #ARGV, 9 do ids[#ids + 1] = ARGV[b] end
local recs = redis.call('HMGET', KEYS[1], unpack(ids))
local hs, zrem, fin = {}, {}, {}
local co = fmt(now)
for k, id in ipairs(ids) do
  local b = 4 + (k - 1) * 9
  local st, patch = ARGV[b + 2], ARGV[b + 3]
  local h = parse(recs[k])
  if h and h.s == 'R' and h.t == ARGV[b + 1] then
    zrem[#zrem + 1] = id
    local rest = h.rest
    if patch ~= '' then rest = rest .. '\31' .. patch end
    h.s = st
    count('R', -1)
    count(st, 1)
    if st == 'T' then
      place(id, tonumber(ARGV[b + 4]), h.r)
    else
      h.co = co
      fin[#fin + 1] = done_entry(st, id, co)
    end
    hs[#hs + 1] = id
    hs[#hs + 1] = header(h) .. rest
    local nid = ARGV[b + 5]
    if nid ~= '' then
      local nrec = ARGV[b + 6]
      if redis.call('HSETNX', KEYS[1], nid, nrec) == 1 then
        place(nid, tonumber(ARGV[b + 7]), ARGV[b + 8])
        count(string.sub(nrec, 1, 1), 1)
      end
    end
    res[k] = 1
  else
    res[k] = 0
  end
end
if #hs > 0 then redis.call('HSET', KEYS[1], unpack(hs)) end
if #zrem > 0 then redis.call('ZREM', KEYS[4], unpack(zrem)) end
finished(KEYS[1], KEYS[5], fin, maxf, ttl, now)
flush_counts(KEYS[7])
if wake then redis.call('PUBLISH', ARGV[1], fmt(wake)) end
return res
"#;

/// KEYS: jobs, ready, running, seq, counts. ARGV: channel, then id, token
/// pairs. Hands held jobs back to the head of their priority, in the given
/// order, the attempt not counted. Returns how many.
const RELEASE: &str = r#"
local n = 0
local pairs_n = (#ARGV - 1) / 2
local seq = redis.call('INCRBY', KEYS[4], pairs_n)
for i = #ARGV - 1, 2, -2 do
  local id, tok = ARGV[i], ARGV[i + 1]
  local h = parse(redis.call('HGET', KEYS[1], id))
  seq = seq + 1
  if h and h.s == 'R' and h.t == tok then
    redis.call('ZREM', KEYS[3], id)
    local a = num(h.a)
    if a > 1 then h.s = 'T' else h.s = 'P' end
    if a > 0 then h.a = fmt(a - 1) end
    h.st = ''
    count('R', -1)
    count(h.s, 1)
    redis.call('HSET', KEYS[1], id, header(h) .. h.rest)
    redis.call('ZADD', KEYS[2], front(h.r, seq), id)
    n = n + 1
  end
end
flush_counts(KEYS[5])
if n > 0 then redis.call('PUBLISH', ARGV[1], '0') end
return n
"#;

/// KEYS: jobs, ready, running, seq, counts, done.
/// ARGV: channel, max finished, finished ttl (us).
/// Jobs whose lease expired go back to ready (the attempt counted), or are
/// failed if it was their last. Returns how many.
const RECOVER: &str = r#"
local now = now_us()
local maxf, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
local n, requeued = 0, 0
local fin = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local h = parse(redis.call('HGET', KEYS[1], id))
  if h and h.s == 'R' then
    local msg = 'the worker running attempt ' .. h.a ..
      ' stopped renewing its lease (it crashed or lost Redis)'
    local last = num(h.a) > num(h.m)
    local patch = '{"last_error":"' .. msg .. '","result":{"success":false,"error":"' ..
      msg .. '","error_type":"LeaseExpired","retryable":' .. (last and 'false' or 'true') .. '}}'
    count('R', -1)
    if last then
      h.s = 'F'
      h.co = fmt(now)
      fin[#fin + 1] = done_entry('F', id, h.co)
    else
      h.s = 'T'
      redis.call('ZADD', KEYS[2], back(h.r, redis.call('INCR', KEYS[4])), id)
      requeued = requeued + 1
    end
    count(h.s, 1)
    redis.call('HSET', KEYS[1], id, header(h) .. h.rest .. '\31' .. patch)
    n = n + 1
  end
end
if #fin > 0 then finished(KEYS[1], KEYS[6], fin, maxf, ttl, now) end
flush_counts(KEYS[5])
if requeued > 0 then redis.call('PUBLISH', ARGV[1], '0') end
return n
"#;

/// KEYS: jobs, ready, delayed, running, done, counts.
/// ARGV: id, max finished, finished ttl (us).
/// Returns '' if there is no such job, 'P' if a waiting job was cancelled,
/// 'R' if a running one was, else the final status it already had.
const CANCEL: &str = r#"
local id = ARGV[1]
local v = redis.call('HGET', KEYS[1], id)
if not v then return '' end
local h = parse(v)
if not h then return 'F' end
if FINAL[h.s] then return h.s end
local was = h.s
if was == 'R' then
  redis.call('ZREM', KEYS[4], id)
else
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local now = now_us()
count(h.s, -1)
count('X', 1)
h.s = 'X'
h.co = fmt(now)
redis.call('HSET', KEYS[1], id, header(h) .. h.rest)
finished(KEYS[1], KEYS[5], { done_entry('X', id, h.co) }, tonumber(ARGV[2]),
  tonumber(ARGV[3]), now)
flush_counts(KEYS[6])
if was == 'R' then return 'R' end
return 'P'
"#;

/// KEYS: jobs, ready, delayed, done, seq, counts.
/// ARGV: channel, id, expected record, new record, due (us), rank.
/// Replaces a finished job's record by a fresh waiting one if the record is
/// still the one the client read. Returns 'ok', 'gone' or 'changed'.
const RETRY: &str = r#"
local id = ARGV[2]
local v = redis.call('HGET', KEYS[1], id)
if not v then return 'gone' end
if v ~= ARGV[3] then return 'changed' end
local h = parse(v)
if not h or not FINAL[h.s] then return 'changed' end
redis.call('LREM', KEYS[4], 1, done_entry(h.s, id, h.co))
redis.call('HSET', KEYS[1], id, ARGV[4])
count(h.s, -1)
count('P', 1)
local now = now_us()
local due = tonumber(ARGV[5])
if due > now then
  redis.call('ZADD', KEYS[3], ARGV[5], id)
  redis.call('PUBLISH', ARGV[1], ARGV[5])
else
  redis.call('ZADD', KEYS[2], back(ARGV[6], redis.call('INCR', KEYS[5])), id)
  redis.call('PUBLISH', ARGV[1], '0')
end
flush_counts(KEYS[6])
return 'ok'
"#;

/// KEYS: counts, delayed. Returns the counts hash as a flat list, then
/// 'S' and the number of scheduled (not yet due) jobs.
const COUNTS: &str = r#"
local out = redis.call('HGETALL', KEYS[1])
out[#out + 1] = 'S'
out[#out + 1] = tostring(redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now_us()), '+inf'))
return out
"#;

/// KEYS: jobs, ready, delayed, running, done, counts.
/// Removes every job; returns how many there were. The sequence counter
/// stays, so leases handed out before stay stale.
const PURGE: &str = r#"
local n = redis.call('HLEN', KEYS[1])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return n
"#;

/// KEYS: jobs, ready, delayed, running, done.
/// ARGV: limit, then '1'/'0' flags: waiting, running, finished, and the
/// status letter of the finished jobs wanted ('' for all).
/// Returns id, record pairs of the candidates (one consistent snapshot):
/// the newest `limit` of each priority band, of the scheduled, running
/// and finished jobs (of that status).
const LIST: &str = r#"
local limit = tonumber(ARGV[1])
local ids = {}
local function add(list) for _, id in ipairs(list) do ids[#ids + 1] = id end end
if ARGV[2] == '1' then
  for rank = 0, 3 do
    add(redis.call('ZREVRANGEBYSCORE', KEYS[2], '(' .. fmt((rank * 2 + 2) * BAND),
      fmt(rank * 2 * BAND), 'LIMIT', 0, limit))
  end
  add(redis.call('ZREVRANGE', KEYS[3], 0, limit - 1))
end
if ARGV[3] == '1' then add(redis.call('ZREVRANGE', KEYS[4], 0, limit - 1)) end
if ARGV[4] == '1' then
  local want = ARGV[5]
  local entries
  if want == '' then entries = redis.call('LRANGE', KEYS[5], 0, limit - 1)
  else entries = redis.call('LRANGE', KEYS[5], 0, -1) end
  local taken = 0
  for _, e in ipairs(entries) do
    if taken >= limit then break end
    if want == '' or string.sub(e, 1, 1) == want then
      ids[#ids + 1] = string.match(e, '^.([^|]*)')
      taken = taken + 1
    end
  end
end
local out = {}
if #ids == 0 then return out end
local recs = redis.call('HMGET', KEYS[1], unpack(ids))
for i, id in ipairs(ids) do
  if recs[i] then
    out[#out + 1] = id
    out[#out + 1] = recs[i]
  end
end
return out
"#;

/// KEYS: last-run hash. ARGV: task, occurrence (ms). Keeps the later time.
const SAVE_LAST_RUN: &str = r#"
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if old == nil or tonumber(ARGV[2]) > old then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"#;

/// The compiled scripts (each carries its SHA1; `EVALSHA` falls back to
/// loading the script after a Redis restart).
pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) reserve: Script,
    pub(super) heartbeat: Script,
    pub(super) finish: Script,
    pub(super) release: Script,
    pub(super) recover: Script,
    pub(super) cancel: Script,
    pub(super) retry: Script,
    pub(super) counts: Script,
    pub(super) purge: Script,
    pub(super) list: Script,
    pub(super) save_last_run: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            enqueue: script(ENQUEUE),
            reserve: script(RESERVE),
            heartbeat: script(HEARTBEAT),
            finish: script(FINISH),
            release: script(RELEASE),
            recover: script(RECOVER),
            cancel: script(CANCEL),
            retry: script(RETRY),
            counts: script(COUNTS),
            purge: script(PURGE),
            list: script(LIST),
            save_last_run: Script::new(SAVE_LAST_RUN),
        }
    }
}
