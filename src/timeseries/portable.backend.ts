/**
 * TimeseriesBackend for plain Redis / Valkey (no RedisTimeSeries module), giving the same
 * answers as the native backend for the same inserts.
 *
 * Layout of one series:
 * - `key`: sorted set, score = timestamp, member = "<timestamp>:<value text as sent by JS>".
 *   The value text is stored verbatim so it reads back as the exact same double.
 * - `{key}:meta`: hash with `retention`, `duplicatePolicy` ("first") and `labels` (JSON array of
 *   [name, value] pairs, in the order given). The series exists iff this hash exists.
 * Cluster: a key without braces hashes on its whole name, and `{key}:meta` hashes on the tag
 * content, i.e. the same name, so both keys share a slot and one script may touch both. Keys
 * containing braces would break that, so they are refused. Every script declares both in KEYS.
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
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from '../redis/redis.types.js';
import { parseInfo, parseSample, parseSamples } from './reply-parser.js';
import type {
  AddOutcome,
  RangeQuery,
  Sample,
  SeriesInfo,
  SeriesOptions,
  TimeseriesBackend,
} from './timeseries.types.js';
import {
  assertRangeQuery,
  assertSeriesOptions,
  errorMessage,
  formatValue,
  NotATimeSeriesError,
  sampleRejection,
} from './wire.js';

/** Metadata key of a series; shares the series' cluster slot (see the header comment). */
export function metaKey(key: string): string {
  if (/[{}]/.test(key)) {
    throw new RangeError(`Portable time series keys must not contain braces: "${key}"`);
  }
  return `{${key}}:meta`;
}

/** Lua: what KEYS[1] / KEYS[2] hold. 'series', 'missing' or 'foreign' (something else). */
const SERIES_STATE = `
local function series_state()
  local meta = redis.call('TYPE', KEYS[2])['ok']
  local data = redis.call('TYPE', KEYS[1])['ok']
  if meta == 'none' then
    if data == 'none' then return 'missing' end
    return 'foreign'
  end
  if meta ~= 'hash' or (data ~= 'none' and data ~= 'zset') then return 'foreign' end
  return 'series'
end
local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'
-- Highest timestamp stored, or nil for an empty series.
local function newest()
  local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if top[2] then return tonumber(top[2]) end
  return nil
end
local function int(x) return string.format('%.0f', x) end
`;

/** ARGV: retention, labels JSON. Returns 'OK' or 'foreign'. */
const ENSURE = `${SERIES_STATE}
local state = series_state()
if state == 'foreign' then return 'foreign' end
redis.call('HSET', KEYS[2], 'retention', ARGV[1], 'duplicatePolicy', 'first', 'labels', ARGV[2])
return 'OK'
`;

/**
 * ARGV: ts1, value1, ts2, value2, … (already validated). Returns 's' / 'd' / rejection text per sample.
 * Measured (npm run bench): a lookup per sample was most of the cost of a backfill, so only a
 * sample at or below the newest timestamp stored before this call is looked up (a newer one
 * cannot exist yet; repeats within the call are caught by `seen`), and the stored samples go
 * out in a few multi-member ZADDs (slices stay far below Lua's unpack() limit).
 */
const ADD = `${SERIES_STATE}
local n = #ARGV / 2
local out = {}
if series_state() ~= 'series' then
  for i = 1, n do out[i] = 'TSDB: the key is not a TSDB key' end
  return out
end
local retention = tonumber(redis.call('HGET', KEYS[2], 'retention')) or 0
local last = newest()
local top = last
local seen, members = {}, {}
for i = 1, n do
  local ts_text, value_text = ARGV[2 * i - 1], ARGV[2 * i]
  local ts = tonumber(ts_text)
  if retention > 0 and last ~= nil and ts < last and last - ts > retention then
    out[i] = 'TSDB: Timestamp is older than retention'
  elseif seen[ts] or (top ~= nil and ts <= top and #redis.call('ZRANGEBYSCORE', KEYS[1], ts_text, ts_text, 'LIMIT', 0, 1) > 0) then
    out[i] = 'd'
  else
    seen[ts] = true
    members[#members + 1] = ts_text
    members[#members + 1] = ts_text .. ':' .. value_text
    out[i] = 's'
    if last == nil or ts > last then last = ts end
  end
end
for i = 1, #members, 1000 do
  redis.call('ZADD', KEYS[1], unpack(members, i, math.min(i + 999, #members)))
end
if retention > 0 and last ~= nil and last > retention then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. int(last - retention))
end
return out
`;

/**
 * ARGV: from, to, aggregator ('' for raw samples), bucket ms. Returns nil for a missing series,
 * else [[ts, value text], …]; aggregated values are formatted with %.17g (exact round trip).
 */
const RANGE = `${SERIES_STATE}
local state = series_state()
if state == 'missing' then return false end
if state == 'foreign' then return redis.error_reply(WRONGTYPE) end
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
local agg, bucket = ARGV[3], tonumber(ARGV[4])
local AGGREGATORS = { [''] = true, avg = true, sum = true, min = true, max = true, range = true,
  count = true, first = true, last = true, ['var.p'] = true, ['var.s'] = true,
  ['std.p'] = true, ['std.s'] = true }
if not AGGREGATORS[agg] then return redis.error_reply('ERR unsupported aggregation ' .. agg) end
local last = newest()
if last == nil then return {} end
local retention = tonumber(redis.call('HGET', KEYS[2], 'retention')) or 0
if retention > 0 and last > retention then
  from = math.max(from, last - retention)
end
if from > to then return {} end

-- Visit samples in timestamp order, a page at a time (timestamps are unique, so an exclusive
-- lower bound on the last one seen continues the scan).
local function each_sample(visit)
  local min, max = int(from), int(to)
  while true do
    local page = redis.call('ZRANGEBYSCORE', KEYS[1], min, max, 'LIMIT', 0, 1000)
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

local out = {}
if agg == '' then
  each_sample(function(ts_text, value_text) out[#out + 1] = { ts_text, value_text } end)
  return out
end

local DBL_MAX = 1.7976931348623157e308
local bucket_start, count, sum, sum2, minv, maxv, first, lastv
local function reset()
  count, sum, sum2, minv, maxv, first, lastv = 0, 0, 0, DBL_MAX, -DBL_MAX, nil, nil
end
local function add(v)
  count = count + 1
  sum = sum + v
  sum2 = sum2 + v * v
  if v < minv then minv = v end
  if v > maxv then maxv = v end
  if first == nil then first = v end
  lastv = v
end
local function variance()
  return (sum2 - 2 * sum * sum / count + (sum / count) ^ 2 * count) / count
end
local function sample_variance()
  if count == 1 then return 0 end
  return variance() * count / (count - 1)
end
local function finalize()
  local value
  if agg == 'avg' then value = sum / count
  elseif agg == 'sum' then value = sum
  elseif agg == 'min' then value = minv
  elseif agg == 'max' then value = maxv
  elseif agg == 'range' then value = maxv - minv
  elseif agg == 'count' then value = count
  elseif agg == 'first' then value = first
  elseif agg == 'last' then value = lastv
  elseif agg == 'var.p' then value = variance()
  elseif agg == 'var.s' then value = sample_variance()
  elseif agg == 'std.p' then value = math.sqrt(variance())
  else value = math.sqrt(sample_variance()) -- std.s
  end
  out[#out + 1] = { int(bucket_start), string.format('%.17g', value) }
end
each_sample(function(ts_text, value_text)
  local ts = tonumber(ts_text)
  local start = ts - math.fmod(ts, bucket)
  if start ~= bucket_start then
    if bucket_start ~= nil then finalize() end
    bucket_start = start
    reset()
  end
  add(tonumber(value_text))
end)
if bucket_start ~= nil then finalize() end
return out
`;

/** Returns nil for a missing series, [] when empty, else [ts text, value text] of the newest sample. */
const LATEST = `${SERIES_STATE}
local state = series_state()
if state == 'missing' then return false end
if state == 'foreign' then return redis.error_reply(WRONGTYPE) end
local top = redis.call('ZRANGE', KEYS[1], -1, -1)
if not top[1] then return {} end
local colon = string.find(top[1], ':', 1, true)
return { string.sub(top[1], 1, colon - 1), string.sub(top[1], colon + 1) }
`;

/** Returns nil for a missing series, else a TS.INFO-shaped flat array (RESP2 layout). */
const INFO = `${SERIES_STATE}
local state = series_state()
if state == 'missing' then return false end
if state == 'foreign' then return redis.error_reply(WRONGTYPE) end
local fields = redis.call('HMGET', KEYS[2], 'retention', 'duplicatePolicy', 'labels')
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
return {
  'totalSamples', total, 'firstTimestamp', first, 'lastTimestamp', last,
  'retentionTime', retention, 'duplicatePolicy', fields[2] or false,
  'labels', cjson.decode(fields[3] or '[]'),
}
`;

/** A Lua script run with EVALSHA, loaded with EVAL when the server does not have it yet. */
class LuaScript {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisClient, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!errorMessage(err).startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

const SCRIPTS = {
  ensure: new LuaScript(ENSURE),
  add: new LuaScript(ADD),
  range: new LuaScript(RANGE),
  latest: new LuaScript(LATEST),
  info: new LuaScript(INFO),
};

export class PortableTimeseriesBackend implements TimeseriesBackend {
  readonly kind = 'portable' as const;

  constructor(private readonly redis: RedisClient) {}

  async ensureSeries(key: string, options: SeriesOptions): Promise<void> {
    assertSeriesOptions(options);
    const labels = JSON.stringify(Object.entries(options.labels));
    const reply = await SCRIPTS.ensure.run(this.redis, [key, metaKey(key)], [String(options.retentionMs), labels]);
    if (reply === 'foreign') throw new NotATimeSeriesError(key);
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
    assertRangeQuery(query);
    const { type, bucketMs } = query.aggregation ?? { type: '', bucketMs: 0 };
    if (type === 'twa') {
      throw new Error('The twa aggregation is not supported by the portable time-series backend');
    }
    const reply = await SCRIPTS.range.run(
      this.redis,
      [query.key, metaKey(query.key)],
      [String(query.from), String(query.to), type, String(bucketMs)],
    );
    return parseSamples(reply); // nil (missing series) parses as []
  }

  async latest(key: string): Promise<Sample | null> {
    return parseSample(await SCRIPTS.latest.run(this.redis, [key, metaKey(key)], []));
  }

  async info(key: string): Promise<SeriesInfo | null> {
    const reply = await SCRIPTS.info.run(this.redis, [key, metaKey(key)], []);
    return reply === null ? null : parseInfo(key, reply);
  }
}
