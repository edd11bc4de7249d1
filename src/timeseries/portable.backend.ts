/**
 * TimeseriesBackend for plain Redis / Valkey (no RedisTimeSeries module), giving the same
 * answers as the native backend for the same inserts.
 *
 * Layout of one series:
 * - `key`: sorted set, score = timestamp, member = "<timestamp>:<value text as sent by JS>".
 *   The value text is stored verbatim so it reads back as the exact same double.
 * - `{key}:meta` (`key:meta` for a key with a hash tag): hash with `retention`,
 *   `duplicatePolicy` ("first"), `labels` (JSON array of [name, value] pairs, in the order
 *   given), and for compactions `rules` (source: JSON [{dest, meta, agg, bucket}]), `source`,
 *   `cur` / `ctxFrom` / `seed` (destination: the rule's open bucket, the first timestamp its
 *   running aggregate covers and, for a rule whose first bucket opened after an upsert had
 *   re-read the newest bucket, that aggregate as it was then: the state the module keeps in
 *   memory). The series exists iff it exists.
 * Cluster: a key without braces hashes on its whole name, and `{key}:meta` hashes on the tag
 * content, i.e. the same name, so both keys share a slot and one script may touch both; a
 * tagged key and `key:meta` share the tag. Braces that form no tag are refused. Every script
 * declares the series' keys in KEYS; the add script also writes the compaction destinations
 * it finds in the metadata, which ensureRule only accepts in the source's slot (same hash tag).
 *
 * Semantics mirrored from RedisTimeSeries (src/module.c, src/tsdb.c, src/compaction.c):
 * - TS.MADD per sample: refused with "TSDB: Timestamp is older than retention" when
 *   retention > 0 and newest - ts > retention (newest = highest timestamp so far, advancing as
 *   the batch is applied in order); else an existing timestamp is a duplicate kept as is
 *   (DUPLICATE_POLICY FIRST); else stored. A missing key rejects every sample with
 *   "TSDB: the key is not a TSDB key".
 * - Retention on reads: TS.RANGE starts at max(from, newest - retention) when
 *   newest > retention, so samples beyond retention are never returned even where the module
 *   has not freed their chunk yet; TS.INFO counts only samples >= newest - retention. Here those
 *   samples are also deleted after each add (the module frees them a chunk at a time).
 * - Aggregation: buckets start at ts - ts % bucket (epoch aligned; timestamps are >= 0, as the
 *   module refuses negative ones) and are reported at that start even when `from` cuts the first
 *   bucket; empty buckets are skipped; each aggregator accumulates in timestamp order with the
 *   module's formulas (avg = sum / count; var = (Σx² - 2·Σx·Σx/n + (Σx/n)^2·n) / n, var.s =
 *   var·n/(n-1), 0 for n = 1; std = sqrt(var)). Lua's `^` is C pow(), as in the module.
 *   Not mirrored: the module's long-double path when a sum overflows DBL_MAX.
 * - twa needs samples outside the bucket and the range; it is not implemented here and throws.
 * - Compaction rules (TS.CREATERULE, epoch-aligned, no back-fill): see the ADD script.
 */
import { Logger } from '@nestjs/common';
import { hashTag, sameSlotKey } from '../redis/key-slot.js';
import { LuaScript } from '../redis/lua-script.js';
import type { RedisClient } from '../redis/redis.types.js';
import { parseInfo, parseMembers, parseSample, parseSamples } from './reply-parser.js';
import type {
  AddOutcome,
  CompactionRule,
  EnsuredRule,
  RangeQuery,
  Sample,
  SeriesInfo,
  SeriesOptions,
  TimeseriesBackend,
} from './timeseries.types.js';
import {
  assertRangeQuery,
  assertRule,
  assertSeriesOptions,
  RuleConflictError,
  formatValue,
  NotATimeSeriesError,
  UnsupportedAggregationError,
  sampleRejection,
} from './wire.js';

/**
 * Metadata key of a series, in the series' cluster slot (see the header comment). A key with a
 * hash tag (a compaction destination such as `{source}:sum:1h`) keeps it: `<key>:meta`. Keys
 * that could collide with a metadata key (`{x}`, `…:meta` with a tag) or that have braces
 * without forming a tag are refused.
 */
export function metaKey(key: string): string {
  // A tagged key could otherwise collide with another series' metadata key.
  if (hashTag(key) !== null && (key.endsWith(':meta') || /^\{[^{}]*\}$/.test(key))) {
    throw new RangeError(`Portable time series key "${key}" is reserved for series metadata`);
  }
  return sameSlotKey(key, 'meta');
}

/** Lua helpers shared by the scripts. */
const COMMON = `
-- What a series' data / metadata keys hold: 'series', 'missing' or 'foreign' (something else).
local function state_of(data_key, meta_key)
  local meta = redis.call('TYPE', meta_key)['ok']
  local data = redis.call('TYPE', data_key)['ok']
  if meta == 'none' then
    if data == 'none' then return 'missing' end
    return 'foreign'
  end
  if meta ~= 'hash' or (data ~= 'none' and data ~= 'zset') then return 'foreign' end
  return 'series'
end
local function series_state() return state_of(KEYS[1], KEYS[2]) end
local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'
-- Highest timestamp stored in a series, or nil when it is empty.
local function newest_of(key)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] then return tonumber(top[2]) end
  return nil
end
local function newest() return newest_of(KEYS[1]) end
local function int(x) return string.format('%.0f', x) end

-- Visit the samples of a series with from <= ts <= to in timestamp order, a page at a time
-- (timestamps are unique, so an exclusive lower bound on the last one seen continues the scan).
local function each_sample(key, from, to, visit)
  local min, max = int(from), int(to)
  while true do
    local page = redis.call('ZRANGEBYSCORE', key, min, max, 'LIMIT', 0, 1000)
    for j = 1, #page do
      local member = page[j]
      local colon = string.find(member, ':', 1, true)
      visit(string.sub(member, 1, colon - 1), string.sub(member, colon + 1))
    end
    if #page < 1000 then return end
    local tail = page[#page]
    min = '(' .. string.sub(tail, 1, string.find(tail, ':', 1, true) - 1)
  end
end

-- One bucket's accumulator, fed in timestamp order, with the module's formulas.
local DBL_MAX = 1.7976931348623157e308
local AGGREGATORS = { avg = true, sum = true, min = true, max = true, range = true, count = true,
  first = true, last = true, ['var.p'] = true, ['var.s'] = true, ['std.p'] = true, ['std.s'] = true }
local function acc_new()
  return { count = 0, sum = 0, sum2 = 0, min = DBL_MAX, max = -DBL_MAX }
end
local function acc_add(a, v)
  a.count = a.count + 1
  a.sum = a.sum + v
  a.sum2 = a.sum2 + v * v
  if v < a.min then a.min = v end
  if v > a.max then a.max = v end
  if a.first == nil then a.first = v end
  a.last = v
end
local function acc_value(a, agg)
  local count, sum = a.count, a.sum
  local function variance()
    return (a.sum2 - 2 * sum * sum / count + (sum / count) ^ 2 * count) / count
  end
  local function sample_variance()
    if count == 1 then return 0 end
    return variance() * count / (count - 1)
  end
  if agg == 'avg' then return sum / count
  elseif agg == 'sum' then return sum
  elseif agg == 'min' then return a.min
  elseif agg == 'max' then return a.max
  elseif agg == 'range' then return a.max - a.min
  elseif agg == 'count' then return count
  elseif agg == 'first' then return a.first
  elseif agg == 'last' then return a.last
  elseif agg == 'var.p' then return variance()
  elseif agg == 'var.s' then return sample_variance()
  elseif agg == 'std.p' then return math.sqrt(variance())
  else return math.sqrt(sample_variance()) -- std.s
  end
end
-- The aggregate of a series' samples in [from, to], or nil when there are none.
local function aggregate(key, from, to, agg)
  local a = acc_new()
  each_sample(key, from, to, function(_, value_text) acc_add(a, tonumber(value_text)) end)
  if a.count == 0 then return nil end
  return acc_value(a, agg)
end
local function value_text(v) return string.format('%.17g', v) end
`;

/** ARGV: retention, labels JSON. Returns 'OK' or 'foreign'. */
const ENSURE = `${COMMON}
local state = series_state()
local reply = 'OK'
if state == 'foreign' then
  -- Samples whose metadata went away (evicted under an allkeys-* policy, deleted by hand): the
  -- series is rebuilt around them when they are ours (members "<ts>:<value>" scored by ts),
  -- instead of the series failing every call for good.
  if redis.call('TYPE', KEYS[2])['ok'] ~= 'none' or redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then return 'foreign' end
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local ts = first[1] and string.match(first[1], '^(-?%d+):.')
  if not ts or tonumber(ts) ~= tonumber(first[2]) then return 'foreign' end
  reply = 'rebuilt'
end
redis.call('HSET', KEYS[2], 'retention', ARGV[1], 'duplicatePolicy', 'first', 'labels', ARGV[2])
return reply
`;

/**
 * ARGV: ts1, value1, ts2, value2, … (already validated). Returns 's' / 'd' / rejection text per
 * sample. Compaction rules (listed in the source's metadata, destinations in the same slot)
 * follow RedisTimeSeries: a sample newer than the newest appends to the rule's open bucket
 * and, when it starts a later bucket, writes the open bucket's aggregate (of the samples the
 * rule has seen: from ctxFrom) to the destination; any other stored or duplicate sample takes
 * the upsert path: in the open bucket the rule re-reads that bucket from the source, in an
 * older bucket the destination's bucket is recomputed from the source (once per bucket, at
 * the end: the same final value as recomputing after each sample; every rule of a bucket size
 * from one scan of the source per run of such buckets, and a bucket that comes out as the
 * destination already holds it is not rewritten: a re-sent day rewrote all its buckets).
 * Measured (the v1 day re-sent with the 5-minute tier on, one series): 36 → 22 ms.
 * Measured (npm run bench): a lookup per sample was most of the cost of a backfill, so only a
 * sample at or below the newest timestamp stored before this call is looked up (a newer one
 * cannot exist yet; repeats within the call are caught by `seen`; many of them in a span that
 * holds few other samples, in one read), and stored samples are
 * written in multi-member ZADDs, flushed before anything reads the source back (a rule
 * aggregating a finished bucket, the dirty buckets, retention) and in slices far below Lua's
 * unpack() limit. A bucket that starts and closes within the call is aggregated from the
 * samples as they are added (`live`, the same operations in the same order as a scan of the
 * source), and the closed buckets are written to each destination together at the end: with
 * the 5-minute tier (a bucket closing every 10 samples of a 30 s series) a scan and two writes
 * per closed bucket and rule had made a backfill twice as slow. Rules sharing a bucket size
 * share one scan of the source where one is still needed (the bucket open when the call began).
 */
const ADD = `${COMMON}
-- An accumulator as text and back, exactly (count, sum, sum2, min, max, first, last; nil: none).
local function seed_encode(a)
  if a == nil or a.count == 0 then return nil end
  return table.concat({ a.count, value_text(a.sum), value_text(a.sum2), value_text(a.min), value_text(a.max), value_text(a.first), value_text(a.last) }, ',')
end
local function seed_decode(text)
  if not text then return nil end
  local f = {}
  for x in string.gmatch(text, '[^,]+') do f[#f + 1] = tonumber(x) end
  return { count = f[1], sum = f[2], sum2 = f[3], min = f[4], max = f[5], first = f[6], last = f[7] }
end
local n = #ARGV / 2
local out = {}
if series_state() ~= 'series' then
  for i = 1, n do out[i] = 'TSDB: the key is not a TSDB key' end
  return out
end
local retention = tonumber(redis.call('HGET', KEYS[2], 'retention')) or 0
local rules = {}
-- The rules per bucket size: an in-order sample concerns a size's rules only when it starts a
-- later bucket than one of them is in (low: the lowest of their open buckets, -1 for a rule
-- that has none yet), so most samples cost one test per size, not one per rule.
local groups, group_of = {}, {}
for _, r in ipairs(cjson.decode(redis.call('HGET', KEYS[2], 'rules') or '[]')) do
  -- One read per rule: every series' metadata has a retention, so a destination deleted since
  -- (its metadata gone) reads as nil and is skipped, as the module does.
  local st = redis.call('HMGET', r.meta, 'retention', 'cur', 'ctxFrom', 'seed')
  -- The destination is touched here, before any write: on a cluster slot being migrated, a
  -- destination already moved fails the script now, not after the source was written (the
  -- script is not rolled back: the samples would be stored and their buckets never written).
  redis.call('EXISTS', r.dest)
  if st[1] then
    r.bucket = tonumber(r.bucket)
    r.retention = tonumber(st[1]) or 0
    r.cur = tonumber(st[2]) or -1
    r.ctx = tonumber(st[3])
    r.seed0 = st[4] or nil -- a missing field reads as false
    r.seed = seed_decode(r.seed0)
    r.cur0, r.ctx0 = r.cur, r.ctx
    r.closed = {}
    rules[#rules + 1] = r
    local g = group_of[r.bucket]
    if g == nil then
      g = { size = r.bucket, rules = {}, low = r.cur, dirty = {} }
      group_of[r.bucket] = g
      groups[#groups + 1] = g
    end
    g.rules[#g.rules + 1] = r
    g.low = math.min(g.low, r.cur)
  end
end
local last = newest()
local top = last
-- Writes a rule's buckets of this call to its destination, in a few commands: those it closed in
-- order (r.closed: ts, value, …; ascending), then the dirty ones of its bucket size (their
-- accumulators, recomputed from the updated source, so they win: a dirty bucket may also be a
-- closed one; one whose source bucket is empty has none and writes nothing). A bucket the
-- destination already holds is replaced, unless it holds that very member (a re-sent payload
-- recomputes every bucket it touches to the same values). Existing members are read per run of
-- nearby buckets, so sparse late samples do not read the destination between them.
local function write_buckets(r, dirty)
  local c = r.closed
  local starts, values = {}, {}
  if next(dirty) == nil then
    -- Only buckets closed in order (the usual case): ascending already.
    for i = 1, #c, 2 do
      starts[#starts + 1] = c[i]
      values[#values + 1] = c[i + 1]
    end
  else
    local by_start = {}
    for i = 1, #c, 2 do by_start[c[i]] = c[i + 1] end
    for b, a in pairs(dirty) do by_start[b] = acc_value(a, r.agg) end
    for b in pairs(by_start) do starts[#starts + 1] = b end
    table.sort(starts)
    for k, b in ipairs(starts) do values[k] = by_start[b] end
  end
  if #starts == 0 then return end
  -- members: ts, "ts:value", … in bucket order; at: bucket start -> its position in members.
  local members, at = {}, {}
  for k, b in ipairs(starts) do
    local t = int(b)
    members[2 * k - 1] = t
    members[2 * k] = t .. ':' .. value_text(values[k])
    at[b] = 2 * k
  end
  local stale, same = {}, 0
  local i = 1
  while i <= #starts do
    local j = i
    while j < #starts and starts[j + 1] - starts[j] <= 16 * r.bucket do j = j + 1 end
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', r.dest, members[2 * i - 1], members[2 * j - 1])) do
      local k = at[tonumber(string.sub(m, 1, string.find(m, ':', 1, true) - 1))]
      if k ~= nil then
        if members[k] == m then
          members[k - 1], members[k] = false, false
          same = same + 1
        else
          stale[#stale + 1] = m
        end
      end
    end
    i = j + 1
  end
  if same > 0 then
    local kept = {}
    for k = 1, #members do
      if members[k] then kept[#kept + 1] = members[k] end
    end
    members = kept
  end
  for k = 1, #stale, 1000 do redis.call('ZREM', r.dest, unpack(stale, k, math.min(k + 999, #stale))) end
  for k = 1, #members, 1000 do redis.call('ZADD', r.dest, unpack(members, k, math.min(k + 999, #members))) end
  if #members > 0 then r.wrote = true end
end
-- Per bucket size, the accumulators of its dirty buckets (older than the newest bucket, touched
-- by a late or duplicate sample: every rule of that size recomputes them). One scan of the source
-- per run of overlapping dirty spans feeds every size (the same samples in the same order as one
-- scan per bucket; a re-sent day's dirty day spans its hours and 5 minutes).
local function dirty_aggregates()
  local spans, accs = {}, {}
  for _, g in ipairs(groups) do
    accs[g.size] = {}
    for b in pairs(g.dirty) do spans[#spans + 1] = { b, b + g.size - 1 } end
  end
  table.sort(spans, function(x, y) return x[1] < y[1] end)
  local i = 1
  while i <= #spans do
    local from, to = spans[i][1], spans[i][2]
    while i < #spans and spans[i + 1][1] <= to + 1 do
      i = i + 1
      if spans[i][2] > to then to = spans[i][2] end
    end
    each_sample(KEYS[1], from, to, function(ts_text, v_text)
      local ts, v = tonumber(ts_text), nil
      for _, g in ipairs(groups) do
        local b = ts - math.fmod(ts, g.size)
        if g.dirty[b] then
          v = v or tonumber(v_text)
          local a = accs[g.size][b]
          if a == nil then
            a = acc_new()
            accs[g.size][b] = a
          end
          acc_add(a, v)
        end
      end
    end)
    i = i + 1
  end
  return accs
end
local pending = {}
-- Accumulators of source ranges already scanned in this call: the rules of one tier (sum, min,
-- max, …) close the same bucket together and need one scan between them. Dropped whenever
-- the source changes.
local scans = {}
local function flush()
  if #pending == 0 then return end
  for i = 1, #pending, 1000 do
    redis.call('ZADD', KEYS[1], unpack(pending, i, math.min(i + 999, #pending)))
  end
  pending, scans = {}, {}
end
local function source_aggregate(from, to, agg)
  local k = int(from) .. ':' .. int(to)
  local a = scans[k]
  if a == nil then
    a = acc_new()
    each_sample(KEYS[1], from, to, function(_, v) acc_add(a, tonumber(v)) end)
    scans[k] = a
  end
  if a.count == 0 then return nil end
  return acc_value(a, agg)
end
-- Per bucket size, the bucket of the newest sample added in order in this call and the running
-- aggregate of its samples, fed in timestamp order. ok: the source holds exactly those samples
-- in that bucket (it starts after the newest sample stored before the call, and no late sample
-- fell into it since), so closing it needs no scan.
local live = {}
local function feed(ts, v)
  for _, g in ipairs(groups) do
    local size = g.size
    local b = ts - math.fmod(ts, size)
    local l = live[size]
    if l == nil or l.start ~= b then
      l = { start = b, first = ts, a = acc_new(), ok = top == nil or b > top }
      live[size] = l
    end
    acc_add(l.a, v)
  end
end
local function spoil(ts)
  for size, l in pairs(live) do
    if ts >= l.start and ts < l.start + size then l.ok = false end
  end
end
-- An in-order sample (newer than every stored one) in bucket b of rule r.
local function compact_rule(r, ts, b)
  if r.cur == -1 then
    r.cur = b
    if r.ctx == nil then
      r.ctx = ts
    elseif r.ctx < b then
      -- The newest bucket re-read on an upsert before this rule opened a bucket (see compact):
      -- the module's running aggregate holds those samples, and only what is appended from now
      -- on, not samples arriving late between them. Kept as they are now, as 'seed'.
      flush()
      r.seed = acc_new()
      each_sample(KEYS[1], r.ctx, b - 1, function(_, v) acc_add(r.seed, tonumber(v)) end)
      r.ctx = b
    end
  elseif b > r.cur then
    local l = live[r.bucket]
    local v
    if r.seed ~= nil then
      flush()
      local a = r.seed
      each_sample(KEYS[1], r.cur, r.cur + r.bucket - 1, function(_, x) acc_add(a, tonumber(x)) end)
      v = acc_value(a, r.agg)
      r.seed = nil
    elseif l ~= nil and l.ok and l.start == r.cur and r.ctx ~= nil and r.ctx >= l.start and r.ctx <= l.first then
      v = acc_value(l.a, r.agg)
    else
      flush()
      v = source_aggregate(r.ctx, r.cur + r.bucket - 1, r.agg)
    end
    if v ~= nil then
      r.closed[#r.closed + 1] = r.cur
      r.closed[#r.closed + 1] = v
    end
    r.cur, r.ctx = b, b
  end
end
-- Any other sample does the same to every rule of a size, so it is handled once per size.
local function compact(ts, before)
  local in_order = before == nil or ts > before
  for _, g in ipairs(groups) do
    local size = g.size
    local b = ts - math.fmod(ts, size)
    if in_order then
      if b > g.low then
        local low = nil
        for _, r in ipairs(g.rules) do
          compact_rule(r, ts, b)
          if low == nil or r.cur < low then low = r.cur end
        end
        g.low = low
      end
    else
      local newest_bucket = before - math.fmod(before, size)
      if ts >= newest_bucket then
        -- As the module's upsertCompaction: the running aggregate re-reads the newest bucket,
        -- even for a rule created over stored data that has no open bucket yet; the first bucket
        -- that rule then writes also holds the newest bucket's samples (see CompactionService's
        -- settle_after mark, which keeps history from reading it).
        for _, r in ipairs(g.rules) do r.ctx, r.seed = newest_bucket, nil end
      else
        g.dirty[b] = true
      end
    end
  end
end

-- Whether a timestamp at or below the newest one stored before this call is stored, asked for the
-- samples from the i-th on. Decided at the first such sample (none in an in-order batch): when
-- the rest of the batch has many of them in a span that holds few more members (a re-sent
-- payload), the timestamps of that span are read once; else one lookup each.
local stored_before
local function is_stored(i, ts, ts_text)
  if stored_before == nil then
    local lookups, low = 0, nil
    for k = i, n do
      local t = tonumber(ARGV[2 * k - 1])
      if t <= top then
        lookups = lookups + 1
        if low == nil or t < low then low = t end
      end
    end
    if lookups >= 8 and redis.call('ZCOUNT', KEYS[1], int(low), int(top)) <= 2 * lookups then
      local held = {}
      each_sample(KEYS[1], low, top, function(t) held[tonumber(t)] = true end)
      stored_before = function(t) return held[t] == true end
    else
      stored_before = function(_, t_text) return #redis.call('ZRANGEBYSCORE', KEYS[1], t_text, t_text, 'LIMIT', 0, 1) > 0 end
    end
  end
  return stored_before(ts, ts_text)
end

local seen = {}
for i = 1, n do
  local ts_text, v_text = ARGV[2 * i - 1], ARGV[2 * i]
  local ts = tonumber(ts_text)
  if retention > 0 and last ~= nil and ts < last and last - ts > retention then
    out[i] = 'TSDB: Timestamp is older than retention'
  elseif seen[ts] or (top ~= nil and ts <= top and is_stored(i, ts, ts_text)) then
    out[i] = 'd'
    compact(ts, last)
  else
    seen[ts] = true
    pending[#pending + 1] = ts_text
    pending[#pending + 1] = ts_text .. ':' .. v_text
    out[i] = 's'
    compact(ts, last)
    if last == nil or ts > last then
      feed(ts, tonumber(v_text))
      last = ts
    else
      spoil(ts)
    end
  end
end
flush()
local dirty = dirty_aggregates()
for _, r in ipairs(rules) do
  write_buckets(r, dirty[r.bucket])
  -- Only what changed is written back, and a destination is trimmed to its retention only
  -- when it got a sample (as the module trims a series on insert): with 12 rules a series, this
  -- bookkeeping was most of the cost of adding one sample.
  if r.cur ~= r.cur0 then redis.call('HSET', r.meta, 'cur', int(r.cur)) end
  if r.ctx ~= nil and r.ctx ~= r.ctx0 then redis.call('HSET', r.meta, 'ctxFrom', int(r.ctx)) end
  local seed = seed_encode(r.seed)
  if seed ~= r.seed0 then
    if seed == nil then redis.call('HDEL', r.meta, 'seed') else redis.call('HSET', r.meta, 'seed', seed) end
  end
  if r.wrote and r.retention > 0 then
    local dest_last = newest_of(r.dest)
    if dest_last ~= nil and dest_last > r.retention then
      redis.call('ZREMRANGEBYSCORE', r.dest, '-inf', '(' .. int(dest_last - r.retention))
    end
  end
end
if retention > 0 and last ~= nil and last > retention then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. int(last - retention))
end
return out
`;

/**
 * Several ranges in one call (one round trip, one script start). KEYS: series and metadata
 * key pairs. ARGV: the scan budget (see below), then per range six values: the 1-based index
 * of its series key in KEYS, from, to, bucket ms, aggregators (comma-separated; '' for raw
 * samples), and the open bucket's state a previous call stopped in ('' for none). Returns per
 * range false for a missing series, else one list per aggregator of [ts, value text]
 * (aggregated values formatted with %.17g, an exact round trip), or for raw samples one list of
 * the members as stored, "<ts>:<value text>" (split once, in Node).
 * Aggregated scans share the budget: once that many samples are read, a scan stops at its next
 * sample and adds, after its lists, that sample's timestamp (where the next call resumes) and
 * its open bucket's running state (start, count, sum, sum2, min, max, first, last), which the
 * next call takes up: the buckets and their doubles are those of one scan, however large a
 * bucket. Redis runs nothing else while a script runs: a month of 30 s samples in one call held
 * it ~300 ms. Ranges over
 * the same series, span and bucket are scanned once, every aggregator from the same pass (a
 * history query asks for sum and count of the same raw edge).
 * Measured (npm run bench, 24 h of 30 s samples in 5 min buckets): one scan with the running
 * aggregate in locals instead of a table per bucket, and no function call per sample, cut the
 * script's time about in half; it decodes each member once.
 */
const RANGE = `${COMMON}
local find, sub, fmod = string.find, string.sub, math.fmod
local PAGE = 1000
local budget = tonumber(ARGV[1])

-- The samples of [from, to] as returned, or one list of buckets per aggregator.
local function scan(key, from, to, bucket, aggs, carried)
  local min, max = int(from), int(to)
  if #aggs == 0 then
    -- The members as stored ("<ts>:<value text>"): Node splits them, so each is decoded once.
    local out, n = nil, 0
    while true do
      local page = redis.call('ZRANGEBYSCORE', key, min, max, 'LIMIT', 0, PAGE)
      local len = #page
      if out == nil and len < PAGE then return { page } end
      out = out or {}
      for j = 1, len do
        n = n + 1
        out[n] = page[j]
      end
      if len < PAGE then return { out } end
      local tail = page[len]
      min = '(' .. sub(tail, 1, find(tail, ':', 1, true) - 1)
    end
  end
  local outs, n = {}, 0
  for i = 1, #aggs do outs[i] = {} end
  local start, last_ts = nil, -1
  local count, sum, sum2, lo, hi, first, last = 0, 0, 0, DBL_MAX, -DBL_MAX, nil, nil
  if carried ~= '' then
    -- The bucket a previous call stopped in: its running state, exactly as that call had it.
    local f = {}
    for x in string.gmatch(carried, '[^,]+') do f[#f + 1] = tonumber(x) end
    start, count, sum, sum2, lo, hi, first, last = f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]
    last_ts = start + bucket - 1
  end
  local scanned = 0
  local function close()
    local a = { count = count, sum = sum, sum2 = sum2, min = lo, max = hi, first = first, last = last }
    local ts = int(start)
    n = n + 1
    for i = 1, #aggs do outs[i][n] = { ts, value_text(acc_value(a, aggs[i])) } end
  end
  while true do
    local page = redis.call('ZRANGEBYSCORE', key, min, max, 'LIMIT', 0, PAGE)
    local len = #page
    for j = 1, len do
      local m = page[j]
      local c = find(m, ':', 1, true)
      -- Budget spent (once this scan has read a sample): the next call resumes at this sample
      -- with the open bucket's running state (%.17g: the same doubles), so a call reads at most
      -- the budget whatever the bucket size.
      if budget <= 0 and scanned > 0 then
        outs[#aggs + 1] = sub(m, 1, c - 1)
        outs[#aggs + 2] = table.concat({ int(start), int(count), value_text(sum), value_text(sum2), value_text(lo), value_text(hi), value_text(first), value_text(last) }, ',')
        return outs
      end
      local ts = tonumber(sub(m, 1, c - 1))
      local v = tonumber(sub(m, c + 1))
      -- Timestamps ascend: a sample past the open bucket's last millisecond starts the next one.
      if ts > last_ts then
        if start ~= nil then close() end
        start = ts - fmod(ts, bucket)
        last_ts = start + bucket - 1
        count, sum, sum2, lo, hi, first = 0, 0, 0, DBL_MAX, -DBL_MAX, v
      end
      budget = budget - 1
      scanned = scanned + 1
      -- acc_add, unrolled into locals (same order of operations, so the same doubles).
      count = count + 1
      sum = sum + v
      sum2 = sum2 + v * v
      if v < lo then lo = v end
      if v > hi then hi = v end
      last = v
    end
    if len < PAGE then break end
    local tail = page[len]
    min = '(' .. sub(tail, 1, find(tail, ':', 1, true) - 1)
  end
  if start ~= nil then close() end
  return outs
end

local function range(k, from, to, bucket, agg_list, carried)
  local key = KEYS[k]
  local state = state_of(key, KEYS[k + 1])
  if state == 'missing' then return false end
  if state == 'foreign' then return redis.error_reply(WRONGTYPE) end
  local aggs = {}
  for agg in string.gmatch(agg_list, '[^,]+') do
    if not AGGREGATORS[agg] then return redis.error_reply('ERR unsupported aggregation ' .. agg) end
    aggs[#aggs + 1] = agg
  end
  local empty = {}
  for i = 1, math.max(#aggs, 1) do empty[i] = {} end
  -- A resumed scan always runs: the bucket it carries must be closed, even with nothing left to read.
  local last = newest_of(key)
  if last == nil and carried == '' then return empty end
  local retention = tonumber(redis.call('HGET', KEYS[k + 1], 'retention')) or 0
  if last ~= nil and retention > 0 and last > retention then
    from = math.max(from, last - retention)
  end
  if from > to and carried == '' then return empty end
  return scan(key, from, to, bucket, aggs, carried)
end

local out = {}
for i = 2, #ARGV, 6 do
  local reply = range(tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5])
  if type(reply) == 'table' and reply.err then return reply end
  out[#out + 1] = reply
end
return out
`;

/** Returns nil for a missing series, [] when empty, else [ts text, value text] of the newest sample. */
const LATEST = `${COMMON}
local state = series_state()
if state == 'missing' then return false end
if state == 'foreign' then return redis.error_reply(WRONGTYPE) end
local top = redis.call('ZRANGE', KEYS[1], -1, -1)
if not top[1] then return {} end
local colon = string.find(top[1], ':', 1, true)
return { string.sub(top[1], 1, colon - 1), string.sub(top[1], colon + 1) }
`;

/** Returns nil for a missing series, else a TS.INFO-shaped flat array (RESP2 layout). */
const INFO = `${COMMON}
local state = series_state()
if state == 'missing' then return false end
if state == 'foreign' then return redis.error_reply(WRONGTYPE) end
local fields = redis.call('HMGET', KEYS[2], 'retention', 'duplicatePolicy', 'labels', 'source', 'rules')
local retention = tonumber(fields[1]) or 0
local total, first, last = 0, 0, 0
local top = newest()
if top ~= nil then
  last = top
  -- Like getFirstValidTimestamp(): samples older than newest - retention do not count.
  local min = 0
  if retention > 0 and retention < last then min = last - retention end
  total = redis.call('ZCOUNT', KEYS[1], int(min), '+inf')
  local head = redis.call('ZRANGEBYSCORE', KEYS[1], int(min), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  first = tonumber(head[2])
end
local rules = {}
for _, r in ipairs(cjson.decode(fields[5] or '[]')) do
  rules[#rules + 1] = { r.dest, tonumber(r.bucket), r.agg }
end
return {
  'totalSamples', total, 'firstTimestamp', first, 'lastTimestamp', last,
  'retentionTime', retention, 'duplicatePolicy', fields[2] or false,
  'labels', cjson.decode(fields[3] or '[]'), 'sourceKey', fields[4] or false, 'rules', rules,
}
`;

/**
 * KEYS: source, its meta, dest, its meta. ARGV: aggregator, bucket ms. Returns {0} when the
 * same rule exists, {1, ts, value} / {1} when created (the source's newest sample at that
 * moment, if any), {-1, agg, bucket} when another rule into dest exists; errors like the module.
 */
const ENSURE_RULE = `${COMMON}
for _, k in ipairs({ 1, 3 }) do
  local st = state_of(KEYS[k], KEYS[k + 1])
  if st == 'missing' then return redis.error_reply('ERR TSDB: the key does not exist') end
  if st == 'foreign' then return redis.error_reply(WRONGTYPE) end
end
local agg, bucket = ARGV[1], tonumber(ARGV[2])
local rules = cjson.decode(redis.call('HGET', KEYS[2], 'rules') or '[]')
for _, r in ipairs(rules) do
  if r.dest == KEYS[3] then
    if r.agg == agg and tonumber(r.bucket) == bucket then
      -- The destination's metadata was rebuilt (see ENSURE): it names its source again.
      redis.call('HSETNX', KEYS[4], 'source', KEYS[1])
      return { 0 }
    end
    return { -1, r.agg, tostring(r.bucket) }
  end
end
-- A destination naming this source whose rule the source no longer lists (the source's
-- metadata was rebuilt) gets the rule again, as a new one: no back-fill, marks from now.
local src = redis.call('HGET', KEYS[4], 'source')
if src and src ~= KEYS[1] then
  return redis.error_reply('ERR TSDB: the destination key already has a src rule')
end
if redis.call('HEXISTS', KEYS[2], 'source') == 1 then
  return redis.error_reply('ERR TSDB: the source key already has a source rule')
end
rules[#rules + 1] = { dest = KEYS[3], meta = KEYS[4], agg = agg, bucket = ARGV[2] }
redis.call('HSET', KEYS[2], 'rules', cjson.encode(rules))
redis.call('HSET', KEYS[4], 'source', KEYS[1])
redis.call('HDEL', KEYS[4], 'cur', 'ctxFrom', 'seed')
local top = redis.call('ZRANGE', KEYS[1], -1, -1)
if not top[1] then return { 1 } end
local colon = string.find(top[1], ':', 1, true)
return { 1, string.sub(top[1], 1, colon - 1), string.sub(top[1], colon + 1) }
`;

const logger = new Logger('Timeseries');

const SCRIPTS = {
  ensure: new LuaScript(ENSURE),
  add: new LuaScript(ADD),
  range: new LuaScript(RANGE, true),
  latest: new LuaScript(LATEST, true),
  info: new LuaScript(INFO, true),
  ensureRule: new LuaScript(ENSURE_RULE),
};

/**
 * Samples an aggregated range reads per script call, all its scans together (see RANGE): a few
 * ms of Redis time (~4 µs a sample measured), so other commands, of this instance and of every
 * other client, wait at most that long behind a long history query.
 */
export const SCAN_BUDGET = 5000;

export class PortableTimeseriesBackend implements TimeseriesBackend {
  readonly kind = 'portable' as const;

  constructor(
    private readonly redis: RedisClient,
    /** SCAN_BUDGET; tests make it small to see a range resumed. */
    private readonly scanBudget = SCAN_BUDGET,
  ) {}

  async ensureSeries(key: string, options: SeriesOptions): Promise<void> {
    assertSeriesOptions(options);
    const labels = JSON.stringify(Object.entries(options.labels));
    const reply = await SCRIPTS.ensure.run(this.redis, [key, metaKey(key)], [String(options.retentionMs), labels]);
    if (reply === 'foreign') throw new NotATimeSeriesError(key);
    if (reply === 'rebuilt') {
      logger.warn(`${key} had lost its metadata (evicted or deleted; Redis must not evict these keys: maxmemory-policy noeviction); rebuilt around its samples`);
    }
  }

  async addMany(key: string, samples: Sample[]): Promise<AddOutcome[]> {
    const outcomes: Array<AddOutcome | undefined> = samples.map(sampleRejection);
    const sent = samples.filter((_, i) => outcomes[i] === undefined);
    const keys = [key, metaKey(key)];
    if (sent.length === 0) return outcomes as AddOutcome[];

    const args = sent.flatMap((s) => [String(s.timestamp), formatValue(s.value)]);
    const replies = await SCRIPTS.add.run(this.redis, keys, args);
    if (!Array.isArray(replies) || replies.length !== sent.length) {
      throw new Error(`Unexpected add script reply for ${key}`);
    }
    const classified = replies.map((r: unknown): AddOutcome => {
      if (r === 's') return { status: 'stored' };
      if (r === 'd') return { status: 'duplicate' };
      return { status: 'rejected', reason: String(r) };
    });
    let next = 0;
    return outcomes.map((o) => o ?? classified[next++]);
  }

  async range(query: RangeQuery): Promise<Sample[]> {
    return (await this.rangeMany([query]))[0];
  }

  /**
   * One script call when every series is in one cluster slot (a raw series and its
   * compactions are), else one per slot, in parallel; the same range and bucket over one series
   * is read once for all its aggregations.
   */
  async rangeMany(queries: RangeQuery[]): Promise<Sample[][]> {
    for (const query of queries) {
      assertRangeQuery(query);
      if (query.aggregation?.type === 'twa') {
        throw new UnsupportedAggregationError(
          'aggregation twa is not supported by the portable time-series backend (this Redis has no RedisTimeSeries module)',
        );
      }
    }
    const bySlot = new Map<string, number[]>();
    queries.forEach((q, i) => {
      const slot = hashTag(q.key) ?? q.key;
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), i]);
    });
    const results: Sample[][] = new Array<Sample[]>(queries.length);
    await Promise.all(
      [...bySlot.values()].map(async (indexes) => {
        const answers = await this.rangeInSlot(indexes.map((i) => queries[i]));
        indexes.forEach((i, j) => (results[i] = answers[j]));
      }),
    );
    return results;
  }

  /** Ranges over series of one slot, in one script call. */
  private async rangeInSlot(queries: RangeQuery[]): Promise<Sample[][]> {
    const keys: string[] = [];
    const keyIndex = new Map<string, number>();
    // One scan per series, span and bucket; each query then takes its aggregator's list.
    const scans = new Map<string, { index: number; args: string[]; aggs: string[] }>();
    const picks = queries.map((q) => {
      let k = keyIndex.get(q.key);
      if (k === undefined) {
        k = keys.length + 1;
        keyIndex.set(q.key, k);
        keys.push(q.key, metaKey(q.key));
      }
      const type = q.aggregation?.type ?? '';
      const bucketMs = String(q.aggregation?.bucketMs ?? 0);
      const id = `${k} ${q.from} ${q.to} ${type === '' ? 'raw' : bucketMs}`;
      let scan = scans.get(id);
      if (scan === undefined) {
        scan = { index: scans.size, args: [String(k), String(q.from), String(q.to), bucketMs], aggs: [] };
        scans.set(id, scan);
      }
      let agg = type === '' ? 0 : scan.aggs.indexOf(type);
      if (agg < 0) agg = scan.aggs.push(type) - 1;
      return { scan: scan.index, agg };
    });
    // Each scan's lists (one per aggregator, or the raw members); none for a missing series.
    const lists: Array<Sample[][] | undefined> = [];
    // Script calls until no scan stops for the budget: the ones that did resume where they
    // stopped, with the state of the bucket they stopped in.
    let round = [...scans.values()].map((scan) => ({ ...scan, carried: '' }));
    while (round.length > 0) {
      const args = [String(this.scanBudget), ...round.flatMap((scan) => [...scan.args, scan.aggs.join(','), scan.carried])];
      const reply = await SCRIPTS.range.run(this.redis, keys, args);
      if (!Array.isArray(reply) || reply.length !== round.length) throw new Error('Unexpected range script reply');
      const resumed: typeof round = [];
      round.forEach((scan, i) => {
        const got: unknown = reply[i];
        // A missing series (false, nil once in Node) has no samples, also one gone (FLUSHALL,
        // evicted) between two calls of a resumed read: no half a range. Each list is parsed once.
        if (!Array.isArray(got)) {
          lists[scan.index] = undefined;
          return;
        }
        const raw = scan.aggs.length === 0;
        const parts = raw ? 1 : scan.aggs.length;
        const parsed = got.slice(0, parts).map((list) => (raw ? parseMembers(list) : parseSamples(list)));
        const into = lists[scan.index];
        if (into === undefined) lists[scan.index] = parsed;
        else parsed.forEach((samples, j) => (into[j] = into[j].concat(samples)));
        if (got.length > parts) {
          resumed.push({ ...scan, args: [scan.args[0], String(got[parts]), scan.args[2], scan.args[3]], carried: String(got[parts + 1]) });
        }
      });
      round = resumed;
    }
    return picks.map(({ scan, agg }) => lists[scan]?.[agg] ?? []);
  }

  async latest(key: string): Promise<Sample | null> {
    return parseSample(await SCRIPTS.latest.run(this.redis, [key, metaKey(key)], []));
  }

  async info(key: string): Promise<SeriesInfo | null> {
    const reply = await SCRIPTS.info.run(this.redis, [key, metaKey(key)], []);
    return reply === null ? null : parseInfo(key, reply);
  }

  async ensureRule(source: string, rule: CompactionRule): Promise<EnsuredRule> {
    assertRule(source, rule);
    // The add script writes the destination while it runs on the source's slot.
    if ((hashTag(rule.destKey) ?? rule.destKey) !== (hashTag(source) ?? source)) {
      throw new RangeError(`Compaction destination "${rule.destKey}" must share the cluster slot of "${source}" (use sameSlotKey)`);
    }
    const reply = await SCRIPTS.ensureRule.run(
      this.redis,
      [source, metaKey(source), rule.destKey, metaKey(rule.destKey)],
      [rule.aggregation, String(rule.bucketMs)],
    );
    if (!Array.isArray(reply)) throw new Error(`Unexpected ensure-rule script reply for ${source}`);
    const [status, ...rest] = reply as unknown[];
    if (Number(status) === -1) {
      throw new RuleConflictError(source, rule, {
        destKey: rule.destKey,
        aggregation: String(rest[0]),
        bucketMs: Number(rest[1]),
      });
    }
    if (Number(status) === 0) return { created: false, sourceLatestAtCreation: null };
    return { created: true, sourceLatestAtCreation: rest.length === 2 ? parseSample(rest) : null };
  }
}
