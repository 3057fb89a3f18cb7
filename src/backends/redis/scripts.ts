/**
 * Lua scripts: each transition is one atomic step on the user's slot — write the task, append
 * the event to the user's stream, publish it with its stream id.
 *
 * The stream is trimmed exactly to the retention, not with `MAXLEN ~`: approximate trimming only
 * drops whole macro nodes (100 entries by default), which would make EVENT_RETENTION mean
 * something else here than in embedded mode. The id of the newest trimmed entry is kept beside
 * the stream (Redis does not record it for trims), so an expired cursor is told apart exactly
 * from one that is merely old but missed nothing.
 */

/** Appends and publishes `task_json`; returns the stream id. Shared tail of both write scripts. */
const APPEND_AND_PUBLISH = `
local function append(stream, trimmed, retention, channel, task_json, final, appended_at)
  local id = redis.call('XADD', stream, '*', 'd', task_json, 'f', final, 'a', appended_at)
  local excess = redis.call('XLEN', stream) - tonumber(retention)
  if excess > 0 then
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
    redis.call('SET', trimmed, oldest[#oldest][1])
    redis.call('XTRIM', stream, 'MAXLEN', retention)
  end
  redis.call('PUBLISH', channel, '{"cursor":"' .. id .. '","appendedAt":' .. appended_at .. ',"task":' .. task_json .. '}')
  return id
end
`;

/**
 * KEYS: task, user index, user stream, trimmed marker, idempotency key (or any key of the user's slot)
 * ARGV: task json, task id, sequence, retention, channel, has idempotency key (1/0), appended at
 * (epoch ms), deadline (epoch ms by the Redis server's clock; 0: none)
 * Returns {1, stream id} when created, {0, existing task id} for a reused idempotency key (or for
 * this very task, when a re-sent script finds its first run's task), {-1, ''} when it arrived past
 * its deadline and created nothing: a request its gateway gave up on is not carried out later.
 */
export const CREATE_TASK = `${APPEND_AND_PUBLISH}
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[2]} end
local deadline = tonumber(ARGV[8] or '0')
if deadline and deadline > 0 then
  local time = redis.call('TIME')
  if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > deadline then return {-1, ''} end
end
if ARGV[6] == '1' then
  local existing = redis.call('GET', KEYS[5])
  if existing then return {0, existing} end
  redis.call('SET', KEYS[5], ARGV[2])
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'v', '1')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return {1, append(KEYS[3], KEYS[4], ARGV[4], ARGV[5], ARGV[1], '0', ARGV[7])}
`;

/**
 * KEYS: task, user stream, trimmed marker
 * ARGV: expected version, new task json, new version, retention, channel, final (1/0), appended at
 * (epoch ms), transition id (unique per call)
 * Returns the stream id, or nil when the version moved on (the caller reads again and retries).
 * ioredis re-sends a script whose reply a dropped connection lost; the transition id recognises
 * that second run and answers with the first run's stream id, so a caller never mistakes its own
 * applied change for somebody else's.
 */
export const TRANSITION_TASK = `${APPEND_AND_PUBLISH}
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  if redis.call('HGET', KEYS[1], 't') == ARGV[8] then return redis.call('HGET', KEYS[1], 'c') end
  return nil
end
local id = append(KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[2], ARGV[6], ARGV[7])
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', ARGV[3], 't', ARGV[8], 'c', id)
return id
`;

/** Lua: `parse(id)` splits a stream id into its two numbers; `less(a, b)` orders two ids. */
export const STREAM_ID_ORDER = `
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
`;

/**
 * KEYS: user stream, trimmed marker. ARGV: after ('' = from the start), count.
 * Returns {'expired'} when entries after the cursor were trimmed or the cursor was never issued
 * by this stream, else {'ok', entries}. Checking and reading in one script leaves no gap for a
 * trim to slip between them.
 */
export const READ_EVENTS = `
${STREAM_ID_ORDER}local after = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- No stream yet: only the start-of-log cursor (or none) can be current.
  if after == '' or after == '0-0' then return {'ok', {}} end
  return {'expired'}
end
if after ~= '' then
  local trimmed = redis.call('GET', KEYS[2]) or '0-0'
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local last = '0-0'
  if #newest > 0 then last = newest[1][1] end
  if less(after, trimmed) or less(last, after) then return {'expired'} end
end
local start = '-'
if after ~= '' then start = '(' .. after end
return {'ok', redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[2])}
`;

/**
 * A token bucket: `capacity` tokens, refilled continuously at `capacity` per `period` ms, timed by
 * the Redis server's clock so that every gateway sees the same bucket.
 * KEYS: bucket hash. ARGV: capacity, period ms.
 * Returns {1, 0} when a token was taken, {0, ms until the next token} otherwise.
 */
export const TAKE_TOKEN = `
local capacity = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local rate = capacity / period
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = capacity
  updated = now
end
if now > updated then
  tokens = math.min(capacity, tokens + (now - updated) * rate)
  updated = now
end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(updated))
redis.call('PEXPIRE', KEYS[1], math.ceil(period))
return {allowed, wait}
`;

/**
 * Puts back one token of a bucket that {@link TAKE_TOKEN} made, never above capacity; a bucket
 * that expired meanwhile is full already and stays absent.
 * KEYS: bucket hash. ARGV: capacity. Returns 1 when a token went back, 0 when there was no bucket.
 */
export const GIVE_BACK_TOKEN = `
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
if tokens == nil then return 0 end
redis.call('HSET', KEYS[1], 't', tostring(math.min(tonumber(ARGV[1]), tokens + 1)))
return 1
`;
