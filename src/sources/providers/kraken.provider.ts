/**
 * Kraken, XBT/USD (no key; about 1 request/s per IP). Errors come in the `error` array with
 * HTTP 200. We ask for pair XBTUSD; the result is keyed XXBTZUSD: the single key is taken.
 * - poll: GET /Ticker?pair=XBTUSD → `c[0]` (last trade price, string). No timestamp: the
 *   sample is at poll time.
 * - backfill: GET /OHLC?pair=XBTUSD&interval=1&since=<s> → rows `[time s, open, high, low, close,
 *   vwap, volume, count]`, only ever the newest 720 (12 h); the last row is the candle still open
 *   and is dropped. `backfillReachMs` says so: the caller logs a range reaching further back.
 * - backfillHourly: the same with interval=60: the newest 720 hours (30 days, the open one dropped).
 */
import type { Sample } from '../../timeseries/timeseries.types.js';
import { epochSecondsField, priceField } from '../decimal.js';
import { arrayOf, assertMostlyValid, batchOf, keepRange, objectOf, onStep, tally } from '../records.js';
import type { SourceHttpClient } from '../source-http.service.js';
import { PayloadError, PermanentUpstreamError, tagSource, TransientUpstreamError } from '../source.errors.js';
import type { MetricSpec, SourceBatch, SourceProvider } from '../source.types.js';

export const KRAKEN_LIMITS = {
  /** The ticker is ~400 bytes. */
  tickerBytes: 16 * 1024,
  /** 720 rows of ~80 bytes is ~60 KB. */
  ohlcBytes: 256 * 1024,
  /** Kraken serves 720 rows (721 with the open one); a little slack, no more. */
  ohlcRows: 1000,
} as const;

/** Kraken's OHLC only ever returns the newest 720 rows: 12 h of minutes… */
export const KRAKEN_BACKFILL_REACH_MS = 720 * 60_000;
/** …or 30 days of hours. */
export const KRAKEN_HOURLY_REACH_MS = 720 * 3_600_000;

/** Published limit: about 1 request/s per IP for the public endpoints. */
export const KRAKEN_MIN_INTERVAL_MS = 1000;
const PACING = { lane: 'kraken', minIntervalMs: KRAKEN_MIN_INTERVAL_MS };

/** Kraken errors worth trying again on the next run. */
const TRANSIENT = new Set(['EAPI:Rate limit exceeded', 'EGeneral:Too many requests', 'EGeneral:Temporary lockout', 'EService:Unavailable', 'EService:Busy', 'EService:Deadline elapsed', 'EGeneral:Internal error']);
/** Kraken errors we name in messages; anything else is reported without its text. */
const KNOWN = new Set([...TRANSIENT, 'EQuery:Unknown asset pair', 'EGeneral:Invalid arguments', 'EGeneral:Unknown method', 'EService:Market in cancel_only mode']);

const STRINGS = { strings: true, numbers: true } as const;

export interface KrakenOptions {
  baseUrl: string;
  /** The clock a ticker sample is stamped with (tests fix it). */
  now?: () => number;
}

export class KrakenProvider implements SourceProvider {
  readonly id = 'kraken' as const;
  readonly metrics: readonly MetricSpec[] = [{ metric: 'price', unit: 'USD', cadence: 'tick' }];
  readonly backfillReachMs = KRAKEN_BACKFILL_REACH_MS;
  readonly hourlyReachMs = KRAKEN_HOURLY_REACH_MS;
  private readonly now: () => number;

  constructor(
    private readonly http: SourceHttpClient,
    private readonly options: KrakenOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The last trade price, stamped with the time of the poll (Kraken's ticker has no time). */
  poll(): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const { data, attempts } = await this.http.getJson(`${this.options.baseUrl}/Ticker?pair=XBTUSD`, { source: this.id, maxBytes: KRAKEN_LIMITS.tickerBytes, pacing: PACING });
      const timestamp = this.now();
      const entry = singlePair(data);
      const t = await tally<Sample>([entry], (raw) => {
        if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'ticker is not an object';
        const c = (raw as Record<string, unknown>).c;
        if (!Array.isArray(c)) return 'c is missing';
        const value = priceField(c[0], 'c[0]', STRINGS);
        return typeof value === 'string' ? value : { timestamp, value };
      });
      assertMostlyValid(t);
      return batchOf('price', t, attempts);
    });
  }

  /**
   * Closed 1-minute candles with from <= time <= to; only the last 12 h exist upstream, so an
   * older `from` gets what there is (see backfillReachMs).
   */
  backfill(from: number, to: number): Promise<SourceBatch> {
    return this.ohlc(from, to, 1);
  }

  /** Closed 1-hour candles (close at the hour's start) with from <= time <= to; the last 30 days exist upstream. */
  backfillHourly(from: number, to: number): Promise<SourceBatch> {
    return this.ohlc(from, to, 60);
  }

  private ohlc(from: number, to: number, intervalMinutes: number): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const since = Math.max(0, Math.floor(from / 1000) - intervalMinutes * 60);
      const { data, attempts } = await this.http.getJson(`${this.options.baseUrl}/OHLC?pair=XBTUSD&interval=${intervalMinutes}&since=${since}`, {
        source: this.id,
        maxBytes: KRAKEN_LIMITS.ohlcBytes,
        pacing: PACING,
      });
      const rows = arrayOf(singlePair(data), KRAKEN_LIMITS.ohlcRows, 'OHLC payload');
      const closed = rows.slice(0, -1); // the newest row is the candle still open: counted, not sent
      const t = await tally<Sample>(closed, (raw) => candle(raw, intervalMinutes * 60_000));
      assertMostlyValid(t);
      if (rows.length > 0) {
        t.fetched++;
        t.skipped++;
      }
      // Also by time, as the other venues: a candle is closed once its interval has passed. The
      // position alone keeps the open one when a row is repeated or out of order, and a
      // provisional close would be stored for good (DUPLICATE_POLICY FIRST).
      keepRange(t, from, Math.min(to, this.now() - intervalMinutes * 60_000));
      return batchOf('price', t, attempts);
    });
  }
}

/** `{error: [], result: {<pair>: X, last?: n}}` → X; Kraken's in-band errors as SourceErrors. */
function singlePair(payload: unknown): unknown {
  const body = objectOf(payload);
  if (!Array.isArray(body.error)) throw new PayloadError('upstream payload has no error array');
  if (body.error.length > 0) {
    const first: unknown = body.error[0];
    const code = typeof first === 'string' && KNOWN.has(first) ? first : null;
    const msg = `Kraken reported ${code ?? 'an unrecognised error'}`;
    throw code !== null && TRANSIENT.has(code) ? new TransientUpstreamError(msg) : new PermanentUpstreamError(msg);
  }
  const result = objectOf(body.result, 'upstream result');
  const pairs = Object.keys(result).filter((k) => k !== 'last');
  if (pairs.length !== 1) throw new PayloadError(`upstream result has ${pairs.length} pairs, not 1`);
  return result[pairs[0]];
}

/** [time s, open, high, low, close, vwap, volume, count] → the close at the candle's time. */
function candle(raw: unknown, stepMs: number): Sample | string {
  if (!Array.isArray(raw)) return 'candle is not an array';
  if (raw.length < 5) return `candle has ${raw.length} fields, not 8`;
  const parsed = epochSecondsField(raw[0], 'time', STRINGS);
  const timestamp = typeof parsed === 'string' ? parsed : onStep(parsed, stepMs, 'time');
  if (typeof timestamp === 'string') return timestamp;
  const value = priceField(raw[4], 'close', STRINGS);
  return typeof value === 'string' ? value : { timestamp, value };
}
