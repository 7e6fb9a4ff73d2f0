//! The Lua scripts that make each state change of a job atomic.
//!
//! Every script starts with [`PRELUDE`]: the state parser and helpers, and
//! gets the same keys and the same first three arguments (see
//! [`Scripts::call`]). See the module docs of [`super`] for the key layout
//! and the record format. Times are microseconds of the Redis server's clock
//! (`TIME`), so the leases of workers on different machines are compared on
//! one clock.
//!
//! Redis hashes every byte of every string a script touches, so the hot
//! scripts (reserve, finish) only handle the short state of a job; its JSON
//! passes through once, on reserve, to the worker.

use redis::{Script, ScriptInvocation};

/// Helpers shared by all scripts.
///
/// KEYS: 1 jobs, 2 state, 3 ready, 4 delayed, 5 running, 6 done, 7 seq,
/// 8 counts. ARGV: 1 wake channel, 2 max finished, 3 finished ttl
/// (us, 0 = none), then the script's own arguments.
const PRELUDE: &str = r#"
local K_JOBS, K_STATE, K_READY, K_DELAYED, K_RUNNING, K_DONE, K_SEQ, K_COUNTS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local CHANNEL, MAXF, TTL = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function parse(v)
  if not v then return nil end
  local s, r, a, m, t, st, co, pos =
    string.match(v, '^(%u)(%d)|(%d+)|(%d+)|(%d+)|(%d*)|(%d*)|()')
  if not s then return nil end
  local p = ''
  if pos <= #v then p = string.sub(v, pos) end
  return { s = s, r = r, a = a, m = m, t = t, st = st, co = co, p = p }
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
local function state(h)
  return h.s .. h.r .. '|' .. h.a .. '|' .. h.m .. '|' .. h.t .. '|' .. h.st .. '|' .. h.co .. '|' ..
    h.p
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
local function flush_counts()
  for s, n in pairs(delta) do
    if n ~= 0 then redis.call('HINCRBY', K_COUNTS, s, n) end
  end
end
-- Calls a variadic command with the items of `list` appended, in chunks
-- (Lua's unpack has a limit).
local function variadic(cmd, key, list)
  for i = 1, #list, 4000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 3999, #list)))
  end
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
    for i, e in ipairs(gone) do
      ids[i] = string.match(e, '^.([^|]*)')
      count(string.sub(e, 1, 1), -1)
    end
    variadic('HDEL', K_JOBS, ids)
    variadic('HDEL', K_STATE, ids)
  end
end
local wake = nil
local function woke(due) if wake == nil or due < wake then wake = due end end
local function publish() if wake then redis.call('PUBLISH', CHANNEL, fmt(wake)) end end
-- Puts a waiting job in ready (due now) or delayed.
local function place(id, due, rank, now)
  if due > now then
    redis.call('ZADD', K_DELAYED, fmt(due), id)
    woke(due)
  else
    redis.call('ZADD', K_READY, back(rank, redis.call('INCR', K_SEQ)), id)
    woke(0)
  end
end
"#;

/// ARGV: mode, then per job: id, state, job JSON, due (us, 0 = now), rank.
/// Mode `all`: returns `{'dup', id}` (and stores nothing) if any id is
/// taken, else `{'ok'}`. Mode `each` (independent enqueues sent together):
/// stores the jobs whose ids are free; returns `{'each', 1 or 0 per job}`.
const ENQUEUE: &str = r#"
local each = ARGV[4] == 'each'
local skip = {}
local seen = {}
for i = 5, #ARGV, 5 do
  local id = ARGV[i]
  if seen[id] or redis.call('HEXISTS', K_STATE, id) == 1 then
    if not each then return { 'dup', id } end
    skip[i] = true
  end
  seen[id] = true
end
local now = now_us()
local n = (#ARGV - 4) / 5
local seq = redis.call('INCRBY', K_SEQ, n) - n
local states, bodies, ready, delayed = {}, {}, {}, {}
local res = { 'each' }
for i = 5, #ARGV, 5 do
  if skip[i] then
    res[#res + 1] = 0
  else
    res[#res + 1] = 1
    local id, st, due = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
    states[#states + 1] = id
    states[#states + 1] = st
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = ARGV[i + 2]
    if due > now then
      delayed[#delayed + 1] = ARGV[i + 3]
      delayed[#delayed + 1] = id
      woke(due)
    else
      seq = seq + 1
      ready[#ready + 1] = back(ARGV[i + 4], seq)
      ready[#ready + 1] = id
      woke(0)
    end
    count(string.sub(st, 1, 1), 1)
  end
end
variadic('HSET', K_STATE, states)
variadic('HSET', K_JOBS, bodies)
variadic('ZADD', K_READY, ready)
variadic('ZADD', K_DELAYED, delayed)
flush_counts()
publish()
if each then return res end
return { 'ok' }
"#;

/// ARGV: max, lease (us).
/// Moves due scheduled jobs to ready, then reserves up to `max` ready jobs.
/// Returns `{next due (us, -1 if none), id, state, job JSON, ...}`;
/// a job whose state does not parse is failed on the spot, not returned.
const RESERVE: &str = r#"
local now = now_us()
local max, lease = tonumber(ARGV[4]), tonumber(ARGV[5])
local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local seq = redis.call('INCRBY', K_SEQ, #due) - #due
  local states = redis.call('HMGET', K_STATE, unpack(due))
  local za = {}
  for i, id in ipairs(due) do
    local h = parse(states[i])
    seq = seq + 1
    za[#za + 1] = back(h and h.r or '1', seq)
    za[#za + 1] = id
  end
  redis.call('ZADD', K_READY, unpack(za))
  redis.call('ZREM', K_DELAYED, unpack(due))
end
local out = { '-1' }
-- ZRANGE + ZREMRANGEBYRANK, not ZPOPMIN: no scores to format and convert.
local ids = redis.call('ZRANGE', K_READY, 0, max - 1)
if #ids > 0 then
  redis.call('ZREMRANGEBYRANK', K_READY, 0, #ids - 1)
  local nows, deadline = fmt(now), fmt(now + lease)
  local states = redis.call('HMGET', K_STATE, unpack(ids))
  local tok = redis.call('INCRBY', K_SEQ, #ids) - #ids
  local hs, za, failed, taken, tstates = {}, {}, {}, {}, {}
  local from = { P = 0, T = 0 }
  for i, id in ipairs(ids) do
    local v = states[i]
    if v then
      -- The header of a waiting job, without building a table.
      local s, r, a, m, pos = string.match(v, '^([PT])(%d)|(%d+)|(%d+)|%d+|%d*|%d*|()')
      if s then
        tok = tok + 1
        from[s] = from[s] + 1
        local st = 'R' .. r .. '|' .. inc(a) .. '|' .. m .. '|' .. fmt(tok) .. '|' .. nows ..
          '||' .. string.sub(v, pos)
        hs[#hs + 1] = id
        hs[#hs + 1] = st
        za[#za + 1] = deadline
        za[#za + 1] = id
        taken[#taken + 1] = id
        tstates[#tstates + 1] = st
      elseif not parse(v) then
        local msg = 'corrupt job record ' .. K_STATE .. ' field ' .. id ..
          ': the state does not parse'
        hs[#hs + 1] = id
        hs[#hs + 1] = 'F1|1|0|0|' .. nows .. '|' .. nows .. '|\31{"last_error":"' .. msg ..
          '","result":{"success":false,"error":"' .. msg ..
          '","error_type":"CorruptRecord","retryable":false}}'
        failed[#failed + 1] = done_entry('F', id, nows)
        count('P', -1)
        count('F', 1)
      end
    end
  end
  count('P', -from.P)
  count('T', -from.T)
  count('R', from.P + from.T)
  if #hs > 0 then redis.call('HSET', K_STATE, unpack(hs)) end
  if #za > 0 then redis.call('ZADD', K_RUNNING, unpack(za)) end
  if #taken > 0 then
    local bodies = redis.call('HMGET', K_JOBS, unpack(taken))
    for i, id in ipairs(taken) do
      out[#out + 1] = id
      out[#out + 1] = tstates[i]
      out[#out + 1] = bodies[i] or ''
    end
  end
  if #failed > 0 then finished(failed, now) end
  flush_counts()
end
local nd = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if nd[2] then out[1] = nd[2] end
return out
"#;

/// ARGV: lease (us), then id, token pairs.
/// Extends held leases; returns the 1-based positions of those not held.
const HEARTBEAT: &str = r#"
local now = now_us()
local deadline = fmt(now + tonumber(ARGV[4]))
local ids = {}
for i = 5, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local states = redis.call('HMGET', K_STATE, unpack(ids))
local lost, za = {}, {}
for k, id in ipairs(ids) do
  local h = parse(states[k])
  if h and h.s == 'R' and h.t == ARGV[4 + 2 * k] then
    za[#za + 1] = deadline
    za[#za + 1] = id
  else
    lost[#lost + 1] = k
  end
end
if #za > 0 then redis.call('ZADD', K_RUNNING, 'XX', unpack(za)) end
return lost
"#;

/// ARGV: per entry 5 values: id, token, new status (followed by `+` if a
/// next job follows), patch ('' = none), retry at (us); then, after a `+`,
/// 5 more: next id, next state, next JSON, next due (us), next rank.
/// Returns 1 per entry whose lease was held (and is now settled), else 0.
const FINISH: &str = r#"
local now = now_us()
local res = {}
local ids, base = {}, {}
local b = 4
while b <= #ARGV do
  ids[#ids + 1] = ARGV[b]
  base[#base + 1] = b
  if #ARGV[b + 2] > 1 then b = b + 10 else b = b + 5 end
end
local states = redis.call('HMGET', K_STATE, unpack(ids))
local hs, zrem, fin = {}, {}, {}
local co = fmt(now)
local running = 0
for k, id in ipairs(ids) do
  local b = base[k]
  local st, patch = ARGV[b + 2], ARGV[b + 3]
  local nxt = #st > 1
  if nxt then st = string.sub(st, 1, 1) end
  -- The header of a running job, without building a table.
  local r, a, m, t, started, done, pos
  if states[k] then
    r, a, m, t, started, done, pos =
      string.match(states[k], '^R(%d)|(%d+)|(%d+)|(%d+)|(%d*)|(%d*)|()')
  end
  if r and t == ARGV[b + 1] then
    zrem[#zrem + 1] = id
    local p = string.sub(states[k], pos)
    if patch ~= '' then p = p .. '\31' .. patch end
    running = running + 1
    count(st, 1)
    if st == 'T' then
      place(id, tonumber(ARGV[b + 4]), r, now)
    else
      done = co
      fin[#fin + 1] = done_entry(st, id, co)
    end
    hs[#hs + 1] = id
    hs[#hs + 1] = st .. r .. '|' .. a .. '|' .. m .. '|' .. t .. '|' .. started .. '|' .. done ..
      '|' .. p
    if nxt then
      local nid = ARGV[b + 5]
      if redis.call('HSETNX', K_STATE, nid, ARGV[b + 6]) == 1 then
        redis.call('HSET', K_JOBS, nid, ARGV[b + 7])
        place(nid, tonumber(ARGV[b + 8]), ARGV[b + 9], now)
        count(string.sub(ARGV[b + 6], 1, 1), 1)
      end
    end
    res[k] = 1
  else
    res[k] = 0
  end
end
if #hs > 0 then redis.call('HSET', K_STATE, unpack(hs)) end
if #zrem > 0 then redis.call('ZREM', K_RUNNING, unpack(zrem)) end
count('R', -running)
finished(fin, now)
flush_counts()
publish()
return res
"#;

/// ARGV: id, token pairs. Hands held jobs back to the head of their
/// priority, in the given order, the attempt not counted. Returns how many.
const RELEASE: &str = r#"
local n = 0
local seq = redis.call('INCRBY', K_SEQ, (#ARGV - 3) / 2)
for i = #ARGV - 1, 4, -2 do
  local id, tok = ARGV[i], ARGV[i + 1]
  local h = parse(redis.call('HGET', K_STATE, id))
  seq = seq + 1
  if h and h.s == 'R' and h.t == tok then
    redis.call('ZREM', K_RUNNING, id)
    local a = num(h.a)
    if a > 1 then h.s = 'T' else h.s = 'P' end
    if a > 0 then h.a = fmt(a - 1) end
    h.st = ''
    count('R', -1)
    count(h.s, 1)
    redis.call('HSET', K_STATE, id, state(h))
    redis.call('ZADD', K_READY, front(h.r, seq), id)
    n = n + 1
  end
end
flush_counts()
if n > 0 then woke(0) end
publish()
return n
"#;

/// Jobs whose lease expired go back to ready (the attempt counted), or are
/// failed if it was their last. Returns how many.
const RECOVER: &str = r#"
local now = now_us()
local expired = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', now, 'LIMIT', 0, 1000)
local n = 0
local fin = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', K_RUNNING, id)
  local h = parse(redis.call('HGET', K_STATE, id))
  if h and h.s == 'R' then
    local msg = 'the worker running attempt ' .. h.a ..
      ' stopped renewing its lease (it crashed or lost Redis)'
    local last = num(h.a) > num(h.m)
    h.p = h.p .. '\31{"last_error":"' .. msg .. '","result":{"success":false,"error":"' ..
      msg .. '","error_type":"LeaseExpired","retryable":' .. (last and 'false' or 'true') .. '}}'
    count('R', -1)
    if last then
      h.s = 'F'
      h.co = fmt(now)
      fin[#fin + 1] = done_entry('F', id, h.co)
    else
      h.s = 'T'
      place(id, 0, h.r, now)
    end
    count(h.s, 1)
    redis.call('HSET', K_STATE, id, state(h))
    n = n + 1
  end
end
if #fin > 0 then finished(fin, now) end
flush_counts()
publish()
return n
"#;

/// ARGV: id. Returns '' if there is no such job, 'P' if a waiting job was
/// cancelled, 'R' if a running one was, else the final status it already
/// had.
const CANCEL: &str = r#"
local id = ARGV[4]
local v = redis.call('HGET', K_STATE, id)
if not v then return '' end
local h = parse(v)
if not h then return 'F' end
if FINAL[h.s] then return h.s end
local was = h.s
if was == 'R' then
  redis.call('ZREM', K_RUNNING, id)
else
  redis.call('ZREM', K_READY, id)
  redis.call('ZREM', K_DELAYED, id)
end
local now = now_us()
count(h.s, -1)
count('X', 1)
h.s = 'X'
h.co = fmt(now)
redis.call('HSET', K_STATE, id, state(h))
finished({ done_entry('X', id, h.co) }, now)
flush_counts()
if was == 'R' then
  -- Workers check their leases at once: the one running it stops it.
  redis.call('PUBLISH', CHANNEL, 'revoked')
  return 'R'
end
return 'P'
"#;

/// ARGV: id, expected state, new state, new JSON, due (us), rank.
/// Puts a finished job back as a fresh waiting one if its state is still
/// the one the client read. Returns 'ok', 'gone' or 'changed'.
const RETRY: &str = r#"
local id = ARGV[4]
local v = redis.call('HGET', K_STATE, id)
if not v then return 'gone' end
if v ~= ARGV[5] then return 'changed' end
local h = parse(v)
if not h or not FINAL[h.s] then return 'changed' end
redis.call('LREM', K_DONE, 1, done_entry(h.s, id, h.co))
redis.call('HSET', K_STATE, id, ARGV[6])
redis.call('HSET', K_JOBS, id, ARGV[7])
count(h.s, -1)
count('P', 1)
place(id, tonumber(ARGV[8]), ARGV[9], now_us())
flush_counts()
publish()
return 'ok'
"#;

/// Returns the counts hash as a flat list, then 'S' and the number of
/// scheduled (not yet due) jobs.
const COUNTS: &str = r#"
local out = redis.call('HGETALL', K_COUNTS)
out[#out + 1] = 'S'
out[#out + 1] = tostring(redis.call('ZCOUNT', K_DELAYED, '(' .. fmt(now_us()), '+inf'))
return out
"#;

/// Removes every job; returns how many there were. The sequence counter
/// stays, so leases handed out before stay stale.
const PURGE: &str = r#"
local n = redis.call('HLEN', K_STATE)
redis.call('UNLINK', K_JOBS, K_STATE, K_READY, K_DELAYED, K_RUNNING, K_DONE, K_COUNTS)
return n
"#;

/// ARGV: ids. Returns id, state, JSON for each job that exists.
const GET: &str = r#"
local out = {}
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return out end
local states = redis.call('HMGET', K_STATE, unpack(ids))
local bodies = redis.call('HMGET', K_JOBS, unpack(ids))
for i, id in ipairs(ids) do
  if states[i] or bodies[i] then
    out[#out + 1] = id
    out[#out + 1] = states[i] or ''
    out[#out + 1] = bodies[i] or ''
  end
end
return out
"#;

/// ARGV: limit, then '1'/'0' flags: waiting, running, finished, and the
/// status letter of the finished jobs wanted ('' for all).
/// Returns id, state, JSON of the candidates (one consistent
/// snapshot): the newest `limit` of each priority band, of the scheduled,
/// running and finished jobs (of that status).
const LIST: &str = r#"
local limit = tonumber(ARGV[4])
local ids = {}
local function add(list) for _, id in ipairs(list) do ids[#ids + 1] = id end end
if ARGV[5] == '1' then
  for rank = 0, 3 do
    add(redis.call('ZREVRANGEBYSCORE', K_READY, '(' .. fmt((rank * 2 + 2) * BAND),
      fmt(rank * 2 * BAND), 'LIMIT', 0, limit))
  end
  add(redis.call('ZREVRANGE', K_DELAYED, 0, limit - 1))
end
if ARGV[6] == '1' then add(redis.call('ZREVRANGE', K_RUNNING, 0, limit - 1)) end
if ARGV[7] == '1' then
  local want = ARGV[8]
  local entries
  if want == '' then entries = redis.call('LRANGE', K_DONE, 0, limit - 1)
  else entries = redis.call('LRANGE', K_DONE, 0, -1) end
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
local states = redis.call('HMGET', K_STATE, unpack(ids))
local bodies = redis.call('HMGET', K_JOBS, unpack(ids))
for i, id in ipairs(ids) do
  if states[i] then
    out[#out + 1] = id
    out[#out + 1] = states[i]
    out[#out + 1] = bodies[i] or ''
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
    pub(super) get: Script,
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
            get: script(GET),
            list: script(LIST),
            save_last_run: Script::new(SAVE_LAST_RUN),
        }
    }
}

/// The keys and common arguments every queue script takes.
pub(super) struct Common<'a> {
    pub(super) keys: [&'a str; 8],
    pub(super) channel: &'a str,
    pub(super) max_finished: u64,
    pub(super) finished_ttl_us: i64,
}

impl Common<'_> {
    /// An invocation of `script` with the common keys and arguments set.
    pub(super) fn call<'s>(&self, script: &'s Script) -> ScriptInvocation<'s> {
        let mut call = script.prepare_invoke();
        for key in self.keys {
            call.key(key);
        }
        call.arg(self.channel)
            .arg(self.max_finished)
            .arg(self.finished_ttl_us);
        call
    }
}
