/**
 * alternative.me Crypto Fear & Greed Index (no key): GET /fng/?limit=N&format=json →
 * `{"data":[{"value":"39","timestamp":"1746148800",…}],"metadata":{"error":null}}`, strings,
 * newest first, one value (0–100) per day. `date_format` is never sent (it replaces the
 * timestamp with a formatted date).
 * - poll: with nothing stored, the newest value (limit=1); otherwise every day since what is
 *   stored (limit = days since, at most 31).
 * - backfill(from, to): limit = days from `from` to now, then the entries in range.
 */
import type { Sample } from '../../timeseries/timeseries.types.js';
import { epochSecondsField, numberField } from '../decimal.js';
import { arrayOf, assertMostlyValid, batchOf, objectOf, SKIP, type Tally, tally } from '../records.js';
import type { SourceHttpClient } from '../source-http.service.js';
import { PayloadError, tagSource } from '../source.errors.js';
import type { MetricSpec, PollContext, SourceBatch, SourceProvider } from '../source.types.js';

export const FEAR_GREED_LIMITS = {
  /** Entries asked for by a poll catching up after an outage. */
  pollDays: 31,
  /** Entries asked for by a backfill at most: ~13 years (the index started in 2018). */
  backfillDays: 5000,
  /** One entry is ~110 bytes: 5,000 are ~0.5 MB. */
  bytes: 2 * 1024 * 1024,
} as const;

const DAY = 86_400_000;
const STRINGS = { strings: true, numbers: true } as const;

export interface FearGreedOptions {
  baseUrl: string;
  /** The clock `limit` is computed from (tests fix it). */
  now?: () => number;
}

export class FearGreedProvider implements SourceProvider {
  readonly id = 'fear-greed' as const;
  readonly metrics: readonly MetricSpec[] = [{ metric: 'sentiment', unit: 'index 0..100', cadence: 'daily' }];
  private readonly now: () => number;

  constructor(
    private readonly http: SourceHttpClient,
    private readonly options: FearGreedOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The newest value, or every value newer than `since` (entries not newer are `skipped`). */
  poll(context: PollContext): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const since = context.since;
      const limit = since === null ? 1 : clamp(Math.ceil((this.now() - since) / DAY) + 1, 1, FEAR_GREED_LIMITS.pollDays);
      const { entries, attempts } = await this.fetch(limit);
      // An entry later than the stored one on its UTC day would be a second value for that day.
      const secondOfStoredDay = (ts: number) => since !== null && ts > since && Math.floor(ts / DAY) === Math.floor(since / DAY);
      const t = oneADay(await tally<Sample>(entries, (raw) => entry(raw, (ts) => since !== null && ts <= since, secondOfStoredDay)));
      assertMostlyValid(t);
      return batchOf('sentiment', t, attempts);
    });
  }

  /** Values with from <= time <= to; entries outside the range are `skipped`. */
  backfill(from: number, to: number): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const limit = clamp(Math.ceil((this.now() - from) / DAY) + 1, 1, FEAR_GREED_LIMITS.backfillDays);
      const { entries, attempts } = await this.fetch(limit);
      const t = oneADay(await tally<Sample>(entries, (raw) => entry(raw, (ts) => ts < from || ts > to)));
      assertMostlyValid(t);
      return batchOf('sentiment', t, attempts);
    });
  }

  private async fetch(limit: number): Promise<{ entries: unknown[]; attempts: number }> {
    const { data, attempts } = await this.http.getJson(`${this.options.baseUrl}/fng/?limit=${limit}&format=json`, {
      source: this.id,
      maxBytes: FEAR_GREED_LIMITS.bytes,
    });
    const body = objectOf(data);
    if (body.metadata !== undefined && body.metadata !== null) {
      const error = objectOf(body.metadata, 'upstream metadata').error;
      if (error !== undefined && error !== null) throw new PayloadError('alternative.me reported an error'); // its text is not quoted
    }
    // A little slack over what was asked; more is not what we asked for.
    return { entries: arrayOf(body.data, limit + 10, 'upstream data'), attempts };
  }
}

/** `skip`: already stored, or out of range; `refuse`: a second value for a day already stored. */
function entry(raw: unknown, skip: (ts: number) => boolean, refuse: (ts: number) => boolean = () => false): Sample | string | typeof SKIP {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'entry is not an object';
  const r = raw as Record<string, unknown>;
  const timestamp = epochSecondsField(r.timestamp, 'timestamp', STRINGS);
  if (typeof timestamp === 'string') return timestamp;
  if (refuse(timestamp)) return 'a second entry for a UTC day already stored (one a day)';
  if (skip(timestamp)) return SKIP;
  const value = numberField(r.value, 'value', STRINGS);
  if (typeof value === 'string') return value;
  if (value < 0 || value > 100) return 'value is outside 0..100';
  return { timestamp, value };
}

/**
 * The index has one value a UTC day: entries that share a day are all invalid (a second "daily"
 * value cannot be told from the first, and either would be stored for good as that day's level).
 */
function oneADay(t: Tally<Sample>): Tally<Sample> {
  // The times of each day's entries (one entry sent twice is one time: batchOf handles it).
  const perDay = new Map<number, Set<number>>();
  for (const s of t.values) {
    const day = Math.floor(s.timestamp / DAY);
    perDay.set(day, (perDay.get(day) ?? new Set()).add(s.timestamp));
  }
  const kept = t.values.filter((s) => perDay.get(Math.floor(s.timestamp / DAY))!.size === 1);
  if (kept.length === t.values.length) return t;
  const shared = [...perDay].filter(([, times]) => times.size > 1).map(([day]) => new Date(day * DAY).toISOString().slice(0, 10));
  const reasons = [...t.invalidReasons, ...shared.map((day) => `several entries on ${day} (one a day)`)].slice(0, 5);
  return { ...t, values: kept, invalid: t.invalid + t.values.length - kept.length, invalidReasons: reasons };
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}
