/**
 * Coinbase Exchange, BTC-USD (no key; 10 requests/s per IP; a call without a User-Agent is a 400).
 * - poll: GET /products/BTC-USD/ticker → `price` (decimal string) at `time` (ISO-8601 with up to
 *   9 fractional digits: the last trade's time, which repeats while nothing trades).
 * - backfill: GET /products/BTC-USD/candles?granularity=60&start=ISO&end=ISO → rows
 *   `[time s, low, high, open, close, volume]` (numbers, newest first, at most 300 per call,
 *   minutes without trades missing). A sample is the close at the candle's time. We ask for 299
 *   minutes per call: 24 h is 5 calls.
 */
import type { Sample } from '../../timeseries/timeseries.types.js';
import { epochSecondsField, isoTimeField, positiveField } from '../decimal.js';
import { arrayOf, assertMostlyValid, batchOf, emptyTally, keepRange, objectOf, SKIP, tally } from '../records.js';
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
  /** Minutes asked per call (≤ 299, so start..end inclusive stays within 300 rows). */
  windowMinutes: 299,
  /** Calls per backfill at most (~6 days of minutes); a longer range keeps its newest part. */
  maxWindows: 30,
} as const;

const MINUTE = 60_000;

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
        maxBytes: COINBASE_LIMITS.tickerBytes,
      });
      const ticker = objectOf(data);
      const t = await tally<Sample>([ticker], () => {
        const timestamp = isoTimeField(ticker.time, 'time');
        if (typeof timestamp === 'string') return timestamp;
        if (context.since !== null && timestamp <= context.since) return SKIP;
        const value = positiveField(ticker.price, 'price', { strings: true, numbers: true });
        return typeof value === 'string' ? value : { timestamp, value };
      });
      assertMostlyValid(t);
      return batchOf('price', t, attempts);
    });
  }

  /** 1-minute closes with from <= time <= to, in windows of 299 minutes, oldest window first. */
  backfill(from: number, to: number): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const windows = candleWindows(from, to);
      const t = emptyTally<Sample>();
      let attempts = 0;
      for (const [start, end] of windows) {
        const q = new URLSearchParams({ granularity: '60', start: new Date(start).toISOString(), end: new Date(end).toISOString() });
        const got = await this.http.getJson(`${this.options.baseUrl}/products/BTC-USD/candles?${q.toString()}`, { maxBytes: COINBASE_LIMITS.candleBytes });
        attempts += got.attempts;
        const rows = arrayOf(got.data, COINBASE_LIMITS.candleRows, 'candles payload');
        await tally<Sample>(rows, candle, t, t.fetched);
      }
      assertMostlyValid(t);
      // A candle still open now (the current minute) is not a sample: its close would be stored
      // for good (DUPLICATE_POLICY FIRST). Counted as skipped, like rows outside the range.
      keepRange(t, from, Math.min(to, Date.now() - MINUTE));
      return batchOf('price', t, attempts);
    });
  }
}

/** [time s, low, high, open, close, volume] → the close at the candle's time, or why not. */
function candle(raw: unknown): Sample | string {
  if (!Array.isArray(raw)) return 'candle is not an array';
  if (raw.length < 5) return `candle has ${raw.length} fields, not 6`;
  const timestamp = epochSecondsField(raw[0], 'time', { numbers: true });
  if (typeof timestamp === 'string') return timestamp;
  const value = positiveField(raw[4], 'close', { numbers: true, strings: true });
  return typeof value === 'string' ? value : { timestamp, value };
}

/**
 * [start, end] ms pairs (inclusive, whole minutes) covering from..to, each at most 299 minutes,
 * oldest first; at most maxWindows of them, the newest.
 */
export function candleWindows(from: number, to: number): Array<[number, number]> {
  const first = Math.ceil(from / MINUTE) * MINUTE;
  const last = Math.floor(to / MINUTE) * MINUTE;
  if (!(first <= last)) return [];
  const span = COINBASE_LIMITS.windowMinutes * MINUTE;
  const earliest = Math.max(first, last - COINBASE_LIMITS.maxWindows * span + MINUTE);
  const out: Array<[number, number]> = [];
  for (let start = earliest; start <= last; start += span) out.push([start, Math.min(start + span - MINUTE, last)]);
  return out;
}
