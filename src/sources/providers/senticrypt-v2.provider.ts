/**
 * SentiCrypt v2 (no key): GET /all.json → the whole history, one record per UTC day,
 * `{"date":"YYYY-MM-DD","mean":-0.0722,…}` (numbers; no timestamp field). `mean` is on v1's
 * −1…1 scale. A sample is the day's mean at 00:00 UTC of `date`: the level for that whole day.
 * Only **complete** days: the record of the current UTC day is a mean of the samples so far,
 * which DUPLICATE_POLICY FIRST could never correct once stored; it is `skipped` until the next
 * UTC day has begun (a day behind is honest, and `latest_sample_time` says it).
 * - poll: the newest complete day, plus any day newer than `since` (catching up after an outage).
 * - backfill(from, to): the complete days in range, from the same all.json.
 */
import type { Sample } from '../../timeseries/timeseries.types.js';
import { numberField, utcDayField } from '../decimal.js';
import { arrayOf, assertMostlyValid, batchOf, SKIP, tally } from '../records.js';
import type { SourceHttpClient } from '../source-http.service.js';
import { tagSource } from '../source.errors.js';
import type { MetricSpec, PollContext, SourceBatch, SourceProvider } from '../source.types.js';

const DAY = 86_400_000;

export const SENTICRYPT_V2_LIMITS = {
  /**
   * all.json grows by one ~170-byte record a day: ~2,300 records and ~0.4 MB in 2026. 20,000
   * records (55 years) and 4 MiB leave room for decades of growth; anything beyond is garbage.
   */
  bytes: 4 * 1024 * 1024,
  records: 20_000,
} as const;

export interface SenticryptV2Options {
  baseUrl: string;
  /** The clock that tells which days are complete (tests fix it). */
  now?: () => number;
}

export class SenticryptV2Provider implements SourceProvider {
  readonly id = 'senticrypt-v2' as const;
  readonly metrics: readonly MetricSpec[] = [{ metric: 'sentiment', unit: 'score -1..1', cadence: 'daily' }];
  private readonly now: () => number;

  constructor(
    private readonly http: SourceHttpClient,
    private readonly options: SenticryptV2Options,
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Complete days newer than `since`; with `since: null`, the newest complete day only (history
   * is backfill's job). The other records are counted as `skipped`.
   */
  poll(context: PollContext): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const { records, attempts } = await this.fetchAll();
      const today = this.today();
      const since = context.since ?? newestDay(records, today) - 1;
      const t = await tally<Sample>(records, (raw) => day(raw, (ts) => ts <= since || ts >= today));
      assertMostlyValid(t);
      return batchOf('sentiment', t, attempts);
    });
  }

  /** Complete days with from <= 00:00 UTC <= to; the other days are counted as `skipped`. */
  backfill(from: number, to: number): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const { records, attempts } = await this.fetchAll();
      const today = this.today();
      const t = await tally<Sample>(records, (raw) => day(raw, (ts) => ts < from || ts > to || ts >= today));
      assertMostlyValid(t);
      return batchOf('sentiment', t, attempts);
    });
  }

  /** 00:00 UTC of the current day: a record dated today (or later) is not complete. */
  private today(): number {
    const now = this.now();
    return now - (now % DAY);
  }

  private async fetchAll(): Promise<{ records: unknown[]; attempts: number }> {
    const { data, attempts } = await this.http.getJson(`${this.options.baseUrl}/all.json`, { source: this.id, maxBytes: SENTICRYPT_V2_LIMITS.bytes });
    return { records: arrayOf(data, SENTICRYPT_V2_LIMITS.records), attempts };
  }
}

function dateOf(raw: unknown): number | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'record is not an object';
  return utcDayField((raw as Record<string, unknown>).date, 'date');
}

/** One all.json record → the day's mean at 00:00 UTC, SKIP when `skip(day)`, or why it is invalid. */
function day(raw: unknown, skip: (ts: number) => boolean): Sample | string | typeof SKIP {
  const timestamp = dateOf(raw);
  if (typeof timestamp === 'string') return timestamp;
  if (skip(timestamp)) return SKIP;
  const mean = numberField((raw as Record<string, unknown>).mean, 'mean', { numbers: true, strings: true });
  if (typeof mean === 'string') return mean;
  if (mean < -1 || mean > 1) return 'mean is outside -1..1';
  return { timestamp, value: mean };
}

/** 00:00 UTC of the newest valid date before `today` (−Infinity when there is none). */
function newestDay(records: readonly unknown[], today: number): number {
  let newest = -Infinity;
  for (const raw of records) {
    const ts = dateOf(raw);
    if (typeof ts === 'number' && ts > newest && ts < today) newest = ts;
  }
  return newest;
}
