/**
 * Pure parts of history queries: parsing times and buckets, choosing which compacted series
 * can answer a query exactly, and folding compacted partial aggregates into the requested
 * buckets. No I/O here, so it is unit-tested on its own.
 */
import { COMPACTED, type Compacted, DAY_MS, HOUR_MS, type TierCoverage } from '../series/series.catalog.js';
import type { Aggregation, Sample } from '../timeseries/timeseries.types.js';

export { COMPACTED, DAY_MS, HOUR_MS };
export type { Compacted, TierCoverage };

/** ISO-8601 date (UTC midnight) or date-time with a zone, or epoch milliseconds. */
export const TIME_PATTERN =
  /^(?:\d{1,15}|\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?)$/;
export const TIME_HINT = 'an ISO-8601 time with a zone (e.g. 2021-07-07T12:00:00Z), a date (2021-07-07) or epoch milliseconds';

/** A positive integer and a unit: ms, s, m, h or d. */
export const BUCKET_PATTERN = /^([1-9]\d{0,12})(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: HOUR_MS, d: DAY_MS };

/** Epoch ms of a TIME_PATTERN text; RangeError for a date that does not exist. */
export function parseTime(text: string, field: string): number {
  if (!TIME_PATTERN.test(text)) throw new RangeError(`${field} must be ${TIME_HINT}`);
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${field} is not a valid time: ${text}`);
  // Date.parse rolls 2021-02-30 over to March (whatever the zone); a real calendar day reads
  // back the same.
  const date = /^(\d{4})-(\d{2})-(\d{2})/.exec(text);
  if (date) {
    const [, y, m, d] = date;
    if (new Date(Date.UTC(Number(y), Number(m) - 1, Number(d))).toISOString().slice(0, 10) !== `${y}-${m}-${d}`) {
      throw new RangeError(`${field} is not a valid time: ${text}`);
    }
  }
  return ms;
}

export function parseBucket(text: string): number {
  const m = BUCKET_PATTERN.exec(text);
  if (!m) throw new RangeError('bucket must be a positive integer and a unit (ms, s, m, h, d), e.g. 30s, 5m, 1h, 1d');
  const ms = Number(m[1]) * UNIT_MS[m[2]];
  if (!Number.isSafeInteger(ms)) throw new RangeError('bucket is too large');
  return ms;
}

/** Most buckets a range can produce (epoch-aligned buckets touching [from, to]). */
export function maxBuckets(from: number, to: number, bucketMs: number): number {
  return Math.floor(to / bucketMs) - Math.floor(from / bucketMs) + 1;
}

/** The window of a history query as given (`from`, `to`, `bucket`), all optional. */
export interface WindowQuery {
  from?: string;
  to?: string;
  bucket?: string;
}

export interface QueryWindow {
  from: number;
  to: number;
  bucketMs: number;
}

/**
 * A history query's window with its defaults: `to` the newest stored time (`newest()`, asked
 * only when `to` is not given; `from` when that is later), `from` 24 h before `to`, bucket 1h. A bad parameter, `from`
 * after `to`, or more than `maxPoints` buckets is a RangeError whose message names it (a 400
 * for the caller); an error of `newest()` is passed on as it is.
 */
export async function resolveWindow(q: WindowQuery, newest: () => Promise<number>, maxPoints: number, per = ''): Promise<QueryWindow> {
  const bucketMs = parseBucket(q.bucket ?? '1h');
  const given = q.from !== undefined ? parseTime(q.from, 'from') : undefined;
  // Without a `to`, a `from` past the newest sample (a client polling for what is new) is an empty range, not an inverted one.
  const to = q.to !== undefined ? parseTime(q.to, 'to') : Math.max(await newest(), given ?? 0);
  const from = given ?? Math.max(0, to - DAY_MS);
  if (from > to) throw new RangeError(`from (${new Date(from).toISOString()}) must not be after to (${new Date(to).toISOString()})`);
  const points = maxBuckets(from, to, bucketMs);
  if (points > maxPoints) {
    throw new RangeError(
      `this query could return ${points} points${per}, more than SERIES_MAX_POINTS (${maxPoints}); use a larger bucket or a shorter range`,
    );
  }
  return { from, to, bucketMs };
}

/**
 * Why a query is refused that would read `spanMs` of raw samples (`what` says why it reads raw
 * samples), more than `maxSpanMs` (SERIES_MAX_RAW_SPAN_MS); undefined when it is not. A series
 * keeps at most `retentionMs` (0: everything), so a longer range costs no more than that.
 */
export function rawSpanProblem(spanMs: number, retentionMs: number, maxSpanMs: number, what: string, hint: string): string | undefined {
  const readMs = retentionMs > 0 ? Math.min(spanMs, retentionMs) : spanMs;
  if (readMs <= maxSpanMs) return undefined;
  return `${what} is computed from raw samples, and this range would read ${formatSpan(readMs)} of them, more than SERIES_MAX_RAW_SPAN_MS allows (${formatSpan(maxSpanMs)}): ${hint}`;
}

/** `ms` in the largest unit that keeps it readable: 31 days, 36 hours, 90 minutes, 1500 ms. */
function formatSpan(ms: number): string {
  for (const [unit, size] of [['days', DAY_MS], ['hours', HOUR_MS], ['minutes', 60_000], ['seconds', 1000]] as const) {
    if (ms >= 2 * size) return `${+(ms / size).toFixed(1)} ${unit}`;
  }
  return `${ms} ms`;
}

/**
 * Which compactions answer an aggregation exactly. avg is not kept (an average of averages is
 * not the average) but sum/count is; range is max - min. var/std/twa need the raw samples.
 */
export const COMPONENTS: Partial<Record<Aggregation, readonly Compacted[]>> = {
  avg: ['sum', 'count'],
  sum: ['sum'],
  count: ['count'],
  min: ['min'],
  max: ['max'],
  range: ['min', 'max'],
  first: ['first'],
  last: ['last'],
};

/** One part of a query: read from the compaction of tierMs, or from the raw series (null). */
export interface Piece {
  tierMs: number | null;
  /** Inclusive. */
  from: number;
  /** Inclusive. */
  to: number;
}

export interface Plan {
  /** Adjacent, in time order, covering [from, to] of the query. */
  pieces: Piece[];
  /** Raw pieces are aggregated per this bucket (the finest tier used), then folded like compactions. */
  rawBucketMs: number;
}

const ceilTo = (t: number, step: number) => Math.ceil(t / step) * step;
const floorTo = (t: number, step: number) => Math.floor(t / step) * step;

/**
 * How to answer a query exactly from the compactions, or null for raw only. Only tiers whose
 * bucket divides the requested one fit (each of their buckets lies in one requested bucket,
 * epoch-aligned on both sides); `tiers` are those the query may use (fittingTiers). The coarsest fitting tier answers the complete buckets that lie
 * wholly in the range; what is left on either side goes to the next finer tier, and so on; the
 * rest (cut edges, the open bucket, buckets before complete_from) comes from the raw series.
 */
export function planQuery(
  query: { from: number; to: number; bucketMs: number; aggregation: Aggregation },
  tiers: TierCoverage[],
): Plan | null {
  if (!COMPONENTS[query.aggregation]) return null;
  const fitting = tiers.filter((t) => query.bucketMs % t.bucketMs === 0 && t.complete).sort((a, b) => b.bucketMs - a.bucketMs);
  const pieces = split(query.from, query.to, fitting);
  if (pieces.every((p) => p.tierMs === null)) return null;
  return { pieces, rawBucketMs: fitting[fitting.length - 1].bucketMs };
}

function split(from: number, to: number, tiers: TierCoverage[]): Piece[] {
  for (let i = 0; i < tiers.length; i++) {
    const { bucketMs, complete } = tiers[i];
    if (!complete) continue;
    const start = Math.max(ceilTo(from, bucketMs), ceilTo(complete.from, bucketMs));
    const end = Math.min(floorTo(to + 1, bucketMs), floorTo(complete.to, bucketMs));
    if (start >= end) continue;
    const finer = tiers.slice(i + 1);
    return [
      ...(from < start ? split(from, start - 1, finer) : []),
      { tierMs: bucketMs, from: start, to: end - 1 },
      ...(end <= to ? split(end, to, finer) : []),
    ];
  }
  return [{ tierMs: null, from, to }];
}

/** Per tier bucket, the values of the needed compactions. */
export type Partials = Map<number, Partial<Record<Compacted, number>>>;

export function addPartials(into: Partials, component: Compacted, samples: Sample[]): void {
  for (const s of samples) {
    const entry = into.get(s.timestamp) ?? {};
    entry[component] = s.value;
    into.set(s.timestamp, entry);
  }
}

/**
 * Folds tier-bucket partials (disjoint, any order) into epoch-aligned buckets of bucketMs and
 * finalises the aggregation. Sums are added in time order, like the raw aggregation does, so
 * sum and avg differ from the raw answer only by floating-point rounding.
 */
export function foldPartials(partials: Partials, bucketMs: number, aggregation: Aggregation): Sample[] {
  const buckets = new Map<number, Partial<Record<Compacted, number>>>();
  for (const [t, p] of [...partials.entries()].sort(([a], [b]) => a - b)) {
    const start = floorTo(t, bucketMs);
    const acc = buckets.get(start);
    if (!acc) {
      buckets.set(start, { ...p });
      continue;
    }
    if (p.sum !== undefined) acc.sum = (acc.sum ?? 0) + p.sum;
    if (p.count !== undefined) acc.count = (acc.count ?? 0) + p.count;
    if (p.min !== undefined) acc.min = acc.min === undefined ? p.min : Math.min(acc.min, p.min);
    if (p.max !== undefined) acc.max = acc.max === undefined ? p.max : Math.max(acc.max, p.max);
    if (acc.first === undefined) acc.first = p.first;
    if (p.last !== undefined) acc.last = p.last;
  }
  const out: Sample[] = [];
  for (const [timestamp, acc] of buckets) {
    const value = finalize(acc, aggregation);
    if (value !== undefined) out.push({ timestamp, value });
  }
  return out;
}

function finalize(acc: Partial<Record<Compacted, number>>, aggregation: Aggregation): number | undefined {
  switch (aggregation) {
    case 'avg':
      return acc.sum === undefined || !acc.count ? undefined : acc.sum / acc.count;
    case 'range':
      return acc.max === undefined || acc.min === undefined ? undefined : acc.max - acc.min;
    default:
      return acc[aggregation as Compacted];
  }
}
