/**
 * Bitstamp, BTC/USD (no key; 8,000 requests per 10 minutes per IP). Every field is a string.
 * - poll: GET /ticker/btcusd/ → `last` at `timestamp` (epoch seconds).
 * - backfill: GET /ohlc/btcusd/?step=60&limit=1000&start=<s> → `{"data":{"ohlc":[{timestamp,
 *   close,…}]}}`, oldest first, minutes without trades as flat candles. A sample is the close at
 *   the candle's time; 24 h is 2 calls.
 * - backfillHourly: the same with step=3600: 30 days of hours is 1 call.
 */
import type { Sample } from '../../timeseries/timeseries.types.js';
import { epochSecondsField, priceField } from '../decimal.js';
import { arrayOf, assertMostlyValid, batchOf, emptyTally, keepRange, objectOf, onStep, SKIP, tally } from '../records.js';
import type { SourceHttpClient } from '../source-http.service.js';
import { PayloadError, tagSource } from '../source.errors.js';
import type { MetricSpec, PollContext, SourceBatch, SourceProvider } from '../source.types.js';

export const BITSTAMP_LIMITS = {
  /** The ticker is ~350 bytes. */
  tickerBytes: 16 * 1024,
  /** 1,000 rows of ~150 bytes is ~150 KB. */
  ohlcBytes: 512 * 1024,
  /** Bitstamp's own maximum `limit`. */
  ohlcRows: 1000,
  /** Calls per backfill at most (~7 days of minutes); a longer range keeps its newest part. */
  maxWindows: 10,
} as const;

/** Published limit: 8,000 requests per 10 minutes per IP (13/s); 10/s stays under it. */
export const BITSTAMP_MIN_INTERVAL_MS = 100;
const PACING = { lane: 'bitstamp', minIntervalMs: BITSTAMP_MIN_INTERVAL_MS };

const MINUTE = 60_000;
const HOUR = 3_600_000;
const STRINGS = { strings: true, numbers: true } as const;

export interface BitstampOptions {
  baseUrl: string;
}

export class BitstampProvider implements SourceProvider {
  readonly id = 'bitstamp' as const;
  readonly metrics: readonly MetricSpec[] = [{ metric: 'price', unit: 'USD', cadence: 'tick' }];

  constructor(
    private readonly http: SourceHttpClient,
    private readonly options: BitstampOptions,
  ) {}

  /** The last trade price at the ticker's timestamp; `skipped` when that is not newer than `since`. */
  poll(context: PollContext): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const { data, attempts } = await this.http.getJson(`${this.options.baseUrl}/ticker/btcusd/`, { source: this.id, maxBytes: BITSTAMP_LIMITS.tickerBytes, pacing: PACING });
      const ticker = objectOf(data);
      const t = await tally<Sample>([ticker], () => {
        const timestamp = epochSecondsField(ticker.timestamp, 'timestamp', STRINGS);
        if (typeof timestamp === 'string') return timestamp;
        if (context.since !== null && timestamp <= context.since) return SKIP;
        const value = priceField(ticker.last, 'last', STRINGS);
        return typeof value === 'string' ? value : { timestamp, value };
      });
      assertMostlyValid(t);
      return batchOf('price', t, attempts);
    });
  }

  /** 1-minute closes with from <= time <= to, in windows of 1,000 minutes, oldest first. */
  backfill(from: number, to: number): Promise<SourceBatch> {
    return this.ohlc(from, to, MINUTE);
  }

  /** 1-hour closes (at the hour's start) with from <= time <= to, in windows of 1,000 hours. */
  backfillHourly(from: number, to: number): Promise<SourceBatch> {
    return this.ohlc(from, to, HOUR);
  }

  private ohlc(from: number, to: number, stepMs: number): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const t = emptyTally<Sample>();
      let attempts = 0;
      for (const [start, count] of ohlcWindows(from, to, stepMs)) {
        const q = new URLSearchParams({ step: String(stepMs / 1000), limit: String(count), start: String(start / 1000) });
        const got = await this.http.getJson(`${this.options.baseUrl}/ohlc/btcusd/?${q.toString()}`, { source: this.id, maxBytes: BITSTAMP_LIMITS.ohlcBytes, pacing: PACING });
        attempts += got.attempts;
        const body = objectOf(got.data);
        const inner = body.data === undefined ? undefined : objectOf(body.data, 'ohlc payload data');
        if (inner === undefined) throw new PayloadError('ohlc payload has no data');
        const rows = arrayOf(inner.ohlc, BITSTAMP_LIMITS.ohlcRows, 'ohlc payload');
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

function candle(raw: unknown, stepMs: number): Sample | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'candle is not an object';
  const r = raw as Record<string, unknown>;
  const parsed = epochSecondsField(r.timestamp, 'timestamp', STRINGS);
  const timestamp = typeof parsed === 'string' ? parsed : onStep(parsed, stepMs, 'timestamp');
  if (typeof timestamp === 'string') return timestamp;
  const value = priceField(r.close, 'close', STRINGS);
  return typeof value === 'string' ? value : { timestamp, value };
}

/** [start ms, steps] windows covering from..to in whole steps (minutes or hours), oldest first, at most maxWindows (the newest). */
export function ohlcWindows(from: number, to: number, stepMs = MINUTE): Array<[number, number]> {
  const first = Math.ceil(from / stepMs) * stepMs;
  const last = Math.floor(to / stepMs) * stepMs;
  if (!(first <= last)) return [];
  const span = BITSTAMP_LIMITS.ohlcRows * stepMs;
  const earliest = Math.max(first, last - BITSTAMP_LIMITS.maxWindows * span + stepMs);
  const out: Array<[number, number]> = [];
  for (let start = earliest; start <= last; start += span) out.push([start, Math.min(BITSTAMP_LIMITS.ohlcRows, (last - start) / stepMs + 1)]);
  return out;
}
