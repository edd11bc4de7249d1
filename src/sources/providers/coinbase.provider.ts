/**
 * Coinbase Exchange, BTC-USD (no key; 10 requests/s per IP; a call without a User-Agent is a 400).
 * - poll: GET /products/BTC-USD/ticker → `price` (decimal string) at `time` (ISO-8601 with up to
 *   9 fractional digits: the last trade's time, which repeats while nothing trades).
 * - backfill: GET /products/BTC-USD/candles?granularity=60&start=ISO&end=ISO → rows
 *   `[time s, low, high, open, close, volume]` (numbers, newest first, at most 300 per call,
 *   minutes without trades missing). A sample is the close at the candle's time. We ask for 299
 *   minutes per call: 24 h is 5 calls.
 * - backfillHourly: the same with granularity=3600: 299 hours per call, 30 days is 3 calls.
 */
import type { Sample } from '../../timeseries/timeseries.types.js';
import { epochSecondsField, isoTimeField, priceField } from '../decimal.js';
import { arrayOf, assertMostlyValid, batchOf, emptyTally, keepRange, objectOf, onStep, SKIP, tally } from '../records.js';
import type { SourceHttpClient } from '../source-http.service.js';
import { tagSource } from '../source.errors.js';
import type { MetricSpec, PollContext, SourceBatch, SourceProvider } from '../source.types.js';

export const COINBASE_LIMITS = {
  /** The ticker is ~250 bytes. */
  tickerBytes: 16 * 1024,
  /** 300 rows of ~70 bytes is ~21 KB. */
  candleBytes: 128 * 1024,
  /** Coinbase never sends more than 300 rows. */
  candleRows: 300,
  /** Candles (minutes or hours) asked per call (≤ 299, so start..end inclusive stays within 300 rows). */
  windowSteps: 299,
  /** Calls per backfill at most (~6 days of minutes, ~1 year of hours); a longer range keeps its newest part. */
  maxWindows: 30,
} as const;

/** Published limit: 10 requests/s per IP; 8/s leaves room for the odd retry. */
export const COINBASE_MIN_INTERVAL_MS = 125;
const PACING = { lane: 'coinbase', minIntervalMs: COINBASE_MIN_INTERVAL_MS };

const MINUTE = 60_000;
const HOUR = 3_600_000;

export interface CoinbaseOptions {
  baseUrl: string;
}

export class CoinbaseProvider implements SourceProvider {
  readonly id = 'coinbase' as const;
  readonly metrics: readonly MetricSpec[] = [{ metric: 'price', unit: 'USD', cadence: 'tick' }];

  constructor(
    private readonly http: SourceHttpClient,
    private readonly options: CoinbaseOptions,
  ) {}

  /** The last trade: one sample, `skipped` when its time is not newer than `since`. */
  poll(context: PollContext): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const { data, attempts } = await this.http.getJson(`${this.options.baseUrl}/products/BTC-USD/ticker`, {
        source: this.id,
        maxBytes: COINBASE_LIMITS.tickerBytes,
        pacing: PACING,
      });
      const ticker = objectOf(data);
      const t = await tally<Sample>([ticker], () => {
        const timestamp = isoTimeField(ticker.time, 'time');
        if (typeof timestamp === 'string') return timestamp;
        if (context.since !== null && timestamp <= context.since) return SKIP;
        const value = priceField(ticker.price, 'price', { strings: true, numbers: true });
        return typeof value === 'string' ? value : { timestamp, value };
      });
      assertMostlyValid(t);
      return batchOf('price', t, attempts);
    });
  }

  /** 1-minute closes with from <= time <= to, in windows of 299 minutes, oldest window first. */
  backfill(from: number, to: number): Promise<SourceBatch> {
    return this.candles(from, to, MINUTE);
  }

  /** 1-hour closes (at the hour's start) with from <= time <= to, in windows of 299 hours. */
  backfillHourly(from: number, to: number): Promise<SourceBatch> {
    return this.candles(from, to, HOUR);
  }

  private candles(from: number, to: number, stepMs: number): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const windows = candleWindows(from, to, stepMs);
      const t = emptyTally<Sample>();
      let attempts = 0;
      for (const [start, end] of windows) {
        const q = new URLSearchParams({ granularity: String(stepMs / 1000), start: new Date(start).toISOString(), end: new Date(end).toISOString() });
        const got = await this.http.getJson(`${this.options.baseUrl}/products/BTC-USD/candles?${q.toString()}`, { source: this.id, maxBytes: COINBASE_LIMITS.candleBytes, pacing: PACING });
        attempts += got.attempts;
        const rows = arrayOf(got.data, COINBASE_LIMITS.candleRows, 'candles payload');
        await tally<Sample>(rows, (raw) => candle(raw, stepMs), t, t.fetched);
      }
      assertMostlyValid(t);
      // A candle still open now (the current minute or hour) is not a sample: its close would be
      // stored for good (DUPLICATE_POLICY FIRST). Counted as skipped, like rows outside the range.
      keepRange(t, from, Math.min(to, Date.now() - stepMs));
      return batchOf('price', t, attempts);
    });
  }
}

/** [time s, low, high, open, close, volume] → the close at the candle's time (the start of a step), or why not. */
function candle(raw: unknown, stepMs: number): Sample | string {
  if (!Array.isArray(raw)) return 'candle is not an array';
  if (raw.length < 5) return `candle has ${raw.length} fields, not 6`;
  const parsed = epochSecondsField(raw[0], 'time', { numbers: true });
  const timestamp = typeof parsed === 'string' ? parsed : onStep(parsed, stepMs, 'time');
  if (typeof timestamp === 'string') return timestamp;
  const value = priceField(raw[4], 'close', { numbers: true, strings: true });
  return typeof value === 'string' ? value : { timestamp, value };
}

/**
 * [start, end] ms pairs (inclusive, whole steps: minutes or hours) covering from..to, each at
 * most 299 steps, oldest first; at most maxWindows of them, the newest.
 */
export function candleWindows(from: number, to: number, stepMs = MINUTE): Array<[number, number]> {
  const first = Math.ceil(from / stepMs) * stepMs;
  const last = Math.floor(to / stepMs) * stepMs;
  if (!(first <= last)) return [];
  const span = COINBASE_LIMITS.windowSteps * stepMs;
  const earliest = Math.max(first, last - COINBASE_LIMITS.maxWindows * span + stepMs);
  const out: Array<[number, number]> = [];
  for (let start = earliest; start <= last; start += span) out.push([start, Math.min(start + span - stepMs, last)]);
  return out;
}
