//! The Lua scripts: each decision is one atomic script over Redis's own clock (`TIME`),
//! never the clients' clocks.
//!
//! A semaphore (TTS slots, live STT sessions) is four keys under the account's prefix,
//! all in one hash slot (`{account}`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `…:holders` | sorted set | holder id → lease end (ms, Redis time) |
//! | `…:queue` | sorted set | waiter id → ticket (FIFO order) |
//! | `…:waiting` | sorted set | waiter id → the end of its place in the queue (ms) |
//! | `…:ticket` | string | the last ticket handed out |
//!
//! and a channel `…:wake`, published on every release so waiters ask at once.
//!
//! Expiries only ever grow (`extend`): a process with a short lease never makes the keys
//! of a process with a long one expire under it. They exist so that an account nobody
//! uses any more leaves nothing behind.

/// `now`: Redis's clock in milliseconds (never the clients').
const NOW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"#;

/// Sets `key`'s expiry to `ms` unless it already lasts longer (a missing key stays missing).
const EXTEND: &str = r#"
local function extend(key, ms)
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < ms) then redis.call('PEXPIRE', key, ms) end
end
"#;

/// KEYS: holders, queue, waiting, ticket. ARGV: id, limit, ttl_ms.
/// Returns 0 when `id` holds a slot (now or already), else its place behind the free
/// slots (1 = next).
pub(crate) fn acquire() -> String {
    format!("{NOW}{EXTEND}{ACQUIRE}")
}

const ACQUIRE: &str = r#"
local id, limit, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local keep = ttl * 4
-- Leases that ended: their holders died (or stopped renewing).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- Waiters that stopped asking lose their place.
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, w in ipairs(gone) do redis.call('ZREM', KEYS[2], w) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
if redis.call('ZSCORE', KEYS[1], id) then
  redis.call('ZADD', KEYS[1], now + ttl, id)
  extend(KEYS[1], keep)
  return 0
end
if not redis.call('ZSCORE', KEYS[2], id) then
  -- A ticket counter that was lost (evicted, or Redis restarted with the queue
  -- persisted) starts above the last queued ticket: nobody jumps the line.
  if redis.call('EXISTS', KEYS[4]) == 0 then
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    if #last == 2 then redis.call('SET', KEYS[4], last[2]) end
  end
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), id)
end
-- The place of each waiter lives in `waiting`; one without it (its entry was
-- evicted) would block the line forever: it leaves.
local rank = redis.call('ZRANK', KEYS[2], id)
if rank > 0 then
  local ahead = redis.call('ZRANGE', KEYS[2], 0, rank - 1)
  for _, w in ipairs(ahead) do
    if not redis.call('ZSCORE', KEYS[3], w) then redis.call('ZREM', KEYS[2], w) end
  end
  rank = redis.call('ZRANK', KEYS[2], id)
end
local free = limit - redis.call('ZCARD', KEYS[1])
if rank < free then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[1], now + ttl, id)
  extend(KEYS[1], keep)
  return 0
end
redis.call('ZADD', KEYS[3], now + ttl, id)
for i = 2, 4 do extend(KEYS[i], keep) end
return rank - free + 1
"#;

/// KEYS: holders, queue, waiting, wake channel. ARGV: id.
/// Gives a slot (or a place in the queue) back and wakes the waiters. Returns 1 when
/// `id` held a slot.
pub(crate) const RELEASE: &str = r#"
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('PUBLISH', KEYS[4], '1')
return held
"#;

/// KEYS: holders. ARGV: ttl_ms, limit, id…
/// Extends the leases of the ids that still hold one. An id whose lease is gone (Redis
/// restarted empty, or the process stalled past its lease) is given its slot back while
/// there is room; the ones that cannot be are returned (they lost it).
pub(crate) fn renew() -> String {
    format!("{NOW}{EXTEND}{RENEW}")
}

const RENEW: &str = r#"
local ttl, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lost = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) or redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
extend(KEYS[1], ttl * 4)
return lost
"#;

/// KEYS: the model's log (sorted set: request id → grant time in ms). ARGV: limit,
/// window_ms, request id.
/// A sliding window: at most `limit` grants in any `window`. Returns 0 when granted,
/// else the milliseconds until the oldest grant leaves the window.
pub(crate) fn rate() -> String {
    format!("{NOW}{EXTEND}{RATE}")
}

const RATE: &str = r#"
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  extend(KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now + 1)
"#;
