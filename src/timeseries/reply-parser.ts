/**
 * Turns RedisTimeSeries replies into plain numbers and objects.
 *
 * The same command can reach us in several shapes:
 * - RESP2: doubles are simple strings ("33885.23", "-6.295081967213113E-2", "inf", "nan"),
 *   TS.INFO is a flat [name, value, …] array, labels are [[name, value], …].
 * - RESP3 with ioredis' default `replyMapping: "legacy"`: doubles as strings, maps flattened
 *   to [k, v, k, v] (so TS.INFO labels arrive as a flat array, not as pairs).
 * - RESP3 with `replyMapping: "resp3"`: doubles as JS numbers, maps as plain objects.
 * Timestamps are always integers (RESP integers, or strings when a Lua script returns them).
 */
import { type ReportedRule, type Sample, type SeriesInfo } from './timeseries.types.js';

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function asText(x: unknown): string | undefined {
  if (typeof x === 'string') return x;
  if (Buffer.isBuffer(x)) return x.toString('utf8');
  return undefined;
}

/** A RESP double (number, or its textual form incl. exponent form, inf, -inf, nan). */
export function parseDouble(x: unknown): number {
  if (typeof x === 'number') return x;
  const text = asText(x)?.trim();
  if (text === undefined) throw new TypeError(`Expected a double, got ${describe(x)}`);
  switch (text.toLowerCase()) {
    case 'inf':
    case '+inf':
    case 'infinity':
    case '+infinity':
      return Infinity;
    case '-inf':
    case '-infinity':
      return -Infinity;
    case 'nan':
    case '-nan':
    case '+nan':
      return NaN;
  }
  // Number() alone would accept '', '0x10' or ' 1 '; only decimal notation is a double here.
  if (!DECIMAL.test(text)) throw new TypeError(`Expected a double, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** A RESP integer timestamp (epoch ms), as number, bigint or digit string. */
export function parseTimestamp(x: unknown): number {
  let n: number;
  if (typeof x === 'number') n = x;
  else if (typeof x === 'bigint') n = Number(x);
  else {
    const text = asText(x)?.trim();
    if (text === undefined || !/^[+-]?\d+$/.test(text)) {
      throw new TypeError(`Expected an integer timestamp, got ${describe(x)}`);
    }
    n = Number(text);
  }
  if (!Number.isSafeInteger(n)) throw new TypeError(`Timestamp out of range: ${String(x)}`);
  return n;
}

/** One [timestamp, value] pair; null for the empty reply TS.GET gives on an empty series. */
export function parseSample(reply: unknown): Sample | null {
  if (reply === null || reply === undefined) return null;
  if (!Array.isArray(reply)) throw new TypeError(`Expected a sample, got ${describe(reply)}`);
  if (reply.length === 0) return null;
  if (reply.length !== 2) throw new TypeError(`Expected [timestamp, value], got ${reply.length} items`);
  return { timestamp: parseTimestamp(reply[0]), value: parseDouble(reply[1]) };
}

/**
 * Members of a portable series as its range script returns them for a plain range:
 * `<timestamp>:<value text>` (the sorted-set layout, decoded once, here).
 */
export function parseMembers(reply: unknown): Sample[] {
  if (reply === null || reply === undefined) return [];
  if (!Array.isArray(reply)) throw new TypeError(`Expected an array of members, got ${describe(reply)}`);
  return reply.map((item) => {
    const text = asText(item);
    const colon = text?.indexOf(':') ?? -1;
    if (text === undefined || colon < 1) throw new TypeError(`Expected a "<timestamp>:<value>" member, got ${describe(item)}`);
    return { timestamp: parseTimestamp(text.slice(0, colon)), value: parseDouble(text.slice(colon + 1)) };
  });
}

/** A TS.RANGE reply: an array of [timestamp, value] pairs. */
export function parseSamples(reply: unknown): Sample[] {
  if (reply === null || reply === undefined) return [];
  if (!Array.isArray(reply)) throw new TypeError(`Expected an array of samples, got ${describe(reply)}`);
  return reply.map((item) => {
    const sample = parseSample(item);
    if (sample === null) throw new TypeError('Empty sample inside a range reply');
    return sample;
  });
}

/**
 * Name/value entries of a RESP map in any of its shapes: plain object (RESP3), Map,
 * flat [k, v, k, v] array (RESP2 / legacy mapping) or [[k, v], …] pairs (TS.INFO labels in RESP2).
 */
export function parseMapEntries(reply: unknown): Array<[string, unknown]> {
  if (reply === null || reply === undefined) return [];
  if (reply instanceof Map) return [...reply.entries()].map(([k, v]) => [String(asText(k) ?? k), v]);
  if (Array.isArray(reply)) {
    const pairs = reply.length > 0 && reply.every((e) => Array.isArray(e) && e.length === 2);
    if (pairs) return reply.map((e: unknown[]) => [keyText(e[0]), e[1]]);
    if (reply.length % 2 !== 0) throw new TypeError('Map reply with an odd number of items');
    const out: Array<[string, unknown]> = [];
    for (let i = 0; i < reply.length; i += 2) out.push([keyText(reply[i]), reply[i + 1]]);
    return out;
  }
  if (typeof reply === 'object' && !Buffer.isBuffer(reply)) return Object.entries(reply);
  throw new TypeError(`Expected a map, got ${describe(reply)}`);
}

/** TS.INFO labels → record; a label without value (nil) becomes ''. */
export function parseLabels(reply: unknown): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [name, value] of parseMapEntries(reply)) {
    // Anything but text (a number in some RESP3 replies) is written as String() writes it.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string
    labels[name] = value === null || value === undefined ? '' : (asText(value) ?? String(value));
  }
  return labels;
}

/** A TS.INFO reply (flat array in RESP2 / legacy mapping, object in RESP3) → SeriesInfo. */
export function parseInfo(key: string, reply: unknown): SeriesInfo {
  const fields = new Map(parseMapEntries(reply));
  const integer = (name: string): number => {
    if (!fields.has(name)) throw new TypeError(`TS.INFO reply lacks ${name}`);
    return parseTimestamp(fields.get(name));
  };
  const policy = fields.get('duplicatePolicy');
  return {
    key,
    totalSamples: integer('totalSamples'),
    firstTimestamp: integer('firstTimestamp'),
    lastTimestamp: integer('lastTimestamp'),
    retentionMs: integer('retentionTime'),
    // nil means "no per-key policy" (the server-wide default applies); RedisTimeSeries calls that 'none'.
    duplicatePolicy:
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- as for labels above
      policy === null || policy === undefined ? 'none' : (asText(policy) ?? String(policy)).toLowerCase(),
    labels: parseLabels(fields.get('labels')),
    sourceKey: nullableText(fields.get('sourceKey')),
    rules: parseRules(fields.get('rules')),
  };
}

/**
 * TS.INFO `rules`: RESP2 gives [[destKey, bucketDuration, aggregator, alignment?], …]
 * (alignment since RedisTimeSeries 1.8); RESP3 a map destKey → [bucketDuration, aggregator,
 * alignment?] (an object, a Map, or flattened [k, v, k, v] with the legacy mapping).
 */
export function parseRules(reply: unknown): ReportedRule[] {
  if (reply === null || reply === undefined) return [];
  const listForm = Array.isArray(reply) && reply.every((e) => Array.isArray(e));
  const entries: Array<[unknown, unknown[]]> = listForm
    ? (reply as unknown[][]).map((e) => [e[0], e.slice(1)])
    : parseMapEntries(reply).map(([k, v]) => {
        if (!Array.isArray(v)) throw new TypeError(`TS.INFO rule for ${k} is not an array`);
        return [k, v];
      });
  return entries.map(([dest, [bucket, aggregation, align]]) => {
    // Kept as reported, even an aggregator this service does not know: throwing made TS.INFO
    // (and so GET /series and every startup's rule check) fail for a series with such a rule.
    const type = asText(aggregation)?.toLowerCase();
    if (!type) throw new TypeError(`TS.INFO rule for ${describe(dest)} has no aggregation (${describe(aggregation)})`);
    const alignMs = align === undefined || align === null ? 0 : parseTimestamp(align);
    return { destKey: keyText(dest), bucketMs: parseTimestamp(bucket), aggregation: type, ...(alignMs ? { alignMs } : {}) };
  });
}

function nullableText(x: unknown): string | null {
  if (x === null || x === undefined) return null;
  return keyText(x);
}

function keyText(x: unknown): string {
  const text = asText(x);
  if (text === undefined) throw new TypeError(`Expected a map key, got ${describe(x)}`);
  return text;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return `array(${x.length})`;
  return typeof x === 'string' ? JSON.stringify(x) : typeof x;
}
