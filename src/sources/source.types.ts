/**
 * The contract every upstream implements (ghostfolio's data providers are the model): an id,
 * the metrics it provides, `poll()` for the newest samples and, where the provider keeps
 * history, `backfill(from, to)`. Providers only fetch, parse and validate; storing, events and
 * scheduling belong to ingest.
 */
import type { Sample } from '../timeseries/timeseries.types.js';
import { SOURCE_IDS, type SourceId } from '../config/source-ids.js';

/** The ids are the configuration's (config owns what PRICE_SOURCE / SENTIMENT_SOURCE accept). */
export { SOURCE_IDS, type SourceId };

/** What the service measures. Sentiment is read from one configured source; price from one or several venues. */
export type MetricName = 'price' | 'sentiment';
export const METRIC_NAMES: readonly MetricName[] = ['price', 'sentiment'];

/** One metric as a provider serves it. */
export interface MetricSpec {
  metric: MetricName;
  /** Unit or scale of the values, for labels and the API: 'USD', 'score -1..1', 'index 0..100'. */
  unit: string;
  /**
   * `tick`: a fresh value on every poll (prices). `daily`: one value per UTC day, the level in
   * effect for that whole day (sentiment indices); polled on a slower schedule.
   */
  cadence: 'tick' | 'daily';
}

export interface PollContext {
  /**
   * Newest timestamp (epoch ms) already stored for this source's metrics, or null (nothing
   * stored, or a full re-send was asked for). A provider whose payload repeats old records may
   * count those as `skipped` instead of validating them again.
   */
  since: number | null;
}

/** What one poll or backfill produced: validated samples per metric, plus its bookkeeping. */
export interface SourceBatch {
  /** Validated samples per metric, oldest first, timestamps in epoch ms. */
  samples: Partial<Record<MetricName, Sample[]>>;
  /** Records in the upstream payload(s). */
  fetched: number;
  /** Records not newer than `PollContext.since`: not sent, not validated beyond their time. */
  skipped: number;
  /** Records that failed validation, never stored. */
  invalid: number;
  /** Up to five reasons for invalid records (never the upstream's raw text). */
  invalidReasons: string[];
  /** HTTP calls made, retries included. */
  attempts: number;
}

export interface SourceProvider {
  readonly id: SourceId;
  readonly metrics: readonly MetricSpec[];
  /** The newest samples. Throws a `SourceError` subclass when the run failed as a whole. */
  poll(context: PollContext): Promise<SourceBatch>;
  /** Samples with from <= timestamp <= to (epoch ms), where the provider keeps history. */
  backfill?(from: number, to: number): Promise<SourceBatch>;
  /** How far back `backfill` can reach from now (ms), e.g. 12 h for Kraken's OHLC. */
  readonly backfillReachMs?: number;
  /**
   * Hourly history, for the part of a long first backfill older than the last 24 h (price
   * venues): closed 1-hour candles, a sample being the candle's close at the hour's start, with
   * from <= timestamp <= to.
   */
  backfillHourly?(from: number, to: number): Promise<SourceBatch>;
  /** How far back `backfillHourly` can reach from now (ms), e.g. 30 days for Kraken's OHLC. */
  readonly hourlyReachMs?: number;
}
