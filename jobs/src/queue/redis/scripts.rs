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
  return { s = s, r = tonumber(r), a = tonumber(a), m = tonumber(m), t = t,
           st = st, co = co, rest = string.sub(v, pos) }
end
local function fmt(x) return string.format('%.0f', x) end
local function header(h)
  return h.s .. h.r .. '|' .. fmt(h.a) .. '|' .. fmt(h.m) .. '|' .. h.t .. '|' ..
    h.st .. '|' .. h.co .. '|'
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local BAND = 281474976710656
local function back(rank, seq) return (rank * 2 + 1) * BAND + seq end
local function front(rank, seq) return (rank * 2 + 1) * BAND - seq end
local FINAL = { C = true, F = true, X = true, E = true }
local delta = {}
local function count(s, n) delta[s] = (delta[s] or 0) + n end
local function flush_counts(key)
  for s, n in pairs(delta) do
    if n ~= 0 then redis.call('HINCRBY', key, s, n) end
  end
end
-- Keeps at most `maxf` finished jobs (and none older than `ttl` us).
local function trim(kjobs, kdone, maxf, ttl, now)
  local over = redis.call('ZCARD', kdone) - maxf
  local gone = {}
  if over > 0 then
    local popped = redis.call('ZPOPMIN', kdone, math.min(over, 1000))
    for i = 1, #popped, 2 do gone[#gone + 1] = popped[i] end
  end
  if ttl > 0 then
    local old = redis.call('ZRANGEBYSCORE', kdone, '-inf', now - ttl, 'LIMIT', 0, 1000)
    for _, id in ipairs(old) do
      redis.call('ZREM', kdone, id)
      gone[#gone + 1] = id
    end
  end
  for _, id in ipairs(gone) do
    local h = parse(redis.call('HGET', kjobs, id))
    if h and FINAL[h.s] then
      redis.call('HDEL', kjobs, id)
      count(h.s, -1)
    end
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
for i = 2, #ARGV, 4 do
  local id, rec, due, rank = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  redis.call('HSET', KEYS[1], id, rec)
  if due > now then
    redis.call('ZADD', KEYS[3], due, id)
    if wake == nil or due < wake then wake = due end
  else
    seq = seq + 1
    redis.call('ZADD', KEYS[2], back(rank, seq), id)
    wake = 0
  end
  count(string.sub(rec, 1, 1), 1)
end
flush_counts(KEYS[5])
if wake then redis.call('PUBLISH', ARGV[1], fmt(wake)) end
return { 'ok' }
"#;

/// KEYS: jobs, ready, delayed, running, seq, counts, done.
/// ARGV: max, lease (us).
/// Moves due scheduled jobs to ready, then reserves up to `max` ready jobs.
/// Returns `{next due (us, -1 if none), id, record, id, record...}`; a record whose header
/// does not parse is failed on the spot and not returned.
const RESERVE: &str = r#"
local now = now_us()
local max, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local seq = redis.call('INCRBY', KEYS[5], #due) - #due
  for _, id in ipairs(due) do
    local h = parse(redis.call('HGET', KEYS[1], id))
    seq = seq + 1
    redis.call('ZADD', KEYS[2], back(h and h.r or 1, seq), id)
  end
  redis.call('ZREM', KEYS[3], unpack(due))
end
local out = { '-1' }
local popped = redis.call('ZPOPMIN', KEYS[2], max)
local n = #popped / 2
if n > 0 then
  local tok = redis.call('INCRBY', KEYS[5], n) - n
  for i = 1, #popped, 2 do
    local id = popped[i]
    local v = redis.call('HGET', KEYS[1], id)
    if v then
      local h = parse(v)
      if not h then
        local msg = 'corrupt job record ' .. KEYS[1] .. ' field ' .. id ..
          ': the record header does not parse'
        redis.call('HSET', KEYS[1], id, 'F1|1|0|0|' .. fmt(now) .. '|' .. fmt(now) .. '|' .. v ..
          '\31{"last_error":"' .. msg .. '","result":{"success":false,"error":"' .. msg ..
          '","error_type":"CorruptRecord","retryable":false}}')
        redis.call('ZADD', KEYS[7], now, id)
        count('P', -1)
        count('F', 1)
      elseif h.s == 'P' or h.s == 'T' then
        tok = tok + 1
        count(h.s, -1)
        count('R', 1)
        h.s = 'R'
        h.a = h.a + 1
        h.t = fmt(tok)
        h.st = fmt(now)
        h.co = ''
        local rec = header(h) .. h.rest
        redis.call('HSET', KEYS[1], id, rec)
        redis.call('ZADD', KEYS[4], now + lease, id)
        out[#out + 1] = id
        out[#out + 1] = rec
      end
    end
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
local lost = {}
for i = 2, #ARGV, 2 do
  local id, tok = ARGV[i], ARGV[i + 1]
  local h = parse(redis.call('HGET', KEYS[1], id))
  if h and h.s == 'R' and h.t == tok then
    redis.call('ZADD', KEYS[2], 'XX', now + lease, id)
  else
    lost[#lost + 1] = i / 2
  end
end
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
local finals = 0
local function place(id, due, rank)
  if due > now then
    redis.call('ZADD', KEYS[3], due, id)
    if wake == nil or due < wake then wake = due end
  else
    redis.call('ZADD', KEYS[2], back(rank, redis.call('INCR', KEYS[6])), id)
    wake = 0
  end
end
for b = 4, #ARGV, 9 do
  local id, tok, st, patch = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local h = parse(redis.call('HGET', KEYS[1], id))
  if h and h.s == 'R' and h.t == tok then
    redis.call('ZREM', KEYS[4], id)
    local rest = h.rest
    if patch ~= '' then rest = rest .. '\31' .. patch end
    h.s = st
    count('R', -1)
    count(st, 1)
    if st == 'T' then
      place(id, tonumber(ARGV[b + 4]), h.r)
    else
      h.co = fmt(now)
      redis.call('ZADD', KEYS[5], now, id)
      finals = finals + 1
    end
    redis.call('HSET', KEYS[1], id, header(h) .. rest)
    local nid = ARGV[b + 5]
    if nid ~= '' then
      local nrec = ARGV[b + 6]
      if redis.call('HSETNX', KEYS[1], nid, nrec) == 1 then
        place(nid, tonumber(ARGV[b + 7]), tonumber(ARGV[b + 8]))
        count(string.sub(nrec, 1, 1), 1)
      end
    end
    res[#res + 1] = 1
  else
    res[#res + 1] = 0
  end
end
if finals > 0 then trim(KEYS[1], KEYS[5], maxf, ttl, now) end
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
    if h.a > 1 then h.s = 'T' else h.s = 'P' end
    if h.a > 0 then h.a = h.a - 1 end
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
local n, requeued, finals = 0, 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local h = parse(redis.call('HGET', KEYS[1], id))
  if h and h.s == 'R' then
    local msg = 'the worker running attempt ' .. fmt(h.a) ..
      ' stopped renewing its lease (it crashed or lost Redis)'
    local last = h.a > h.m
    local patch = '{"last_error":"' .. msg .. '","result":{"success":false,"error":"' ..
      msg .. '","error_type":"LeaseExpired","retryable":' .. (last and 'false' or 'true') .. '}}'
    count('R', -1)
    if last then
      h.s = 'F'
      h.co = fmt(now)
      redis.call('ZADD', KEYS[6], now, id)
      finals = finals + 1
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
if finals > 0 then trim(KEYS[1], KEYS[6], maxf, ttl, now) end
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
redis.call('ZADD', KEYS[5], now, id)
trim(KEYS[1], KEYS[5], tonumber(ARGV[2]), tonumber(ARGV[3]), now)
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
local old = h and h.s or 'F'
if not FINAL[old] then return 'changed' end
redis.call('ZREM', KEYS[4], id)
redis.call('HSET', KEYS[1], id, ARGV[4])
count(old, -1)
count('P', 1)
local now = now_us()
local due = tonumber(ARGV[5])
if due > now then
  redis.call('ZADD', KEYS[3], due, id)
  redis.call('PUBLISH', ARGV[1], fmt(due))
else
  redis.call('ZADD', KEYS[2], back(tonumber(ARGV[6]), redis.call('INCR', KEYS[5])), id)
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
/// ARGV: limit, then '1'/'0' flags: waiting, running, finished, and
/// whether to look through all finished jobs (for one final status).
/// Returns id, record pairs of the candidates (one consistent snapshot):
/// the newest `limit` of each priority band, of the scheduled, running
/// and finished jobs.
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
  if ARGV[5] == '1' then add(redis.call('ZREVRANGE', KEYS[5], 0, -1))
  else add(redis.call('ZREVRANGE', KEYS[5], 0, limit - 1)) end
end
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HGET', KEYS[1], id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
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
