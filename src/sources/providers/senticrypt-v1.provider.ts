/**
 * SentiCrypt v1 (`SENTIMENT_API_URL`, frozen upstream): one array of ~30 s snapshots covering
 * the last 24 h, `{timestamp: s (number), btc_price: decimal string or number, mean: number}`.
 * Serves both metrics; kept for existing deployments and for file:// replays. Behaviour is the
 * one ingest had before sources existed (same validation, same reasons, `skipped` semantics).
 */
import type { Sample } from '../../timeseries/timeseries.types.js';
import { BEFORE_BITCOIN, EARLIEST_SAMPLE_MS, numberField, priceField } from '../decimal.js';
import { arrayOf, assertMostlyValid, SKIP, sortedSamples, tally } from '../records.js';
import type { SourceHttpClient } from '../source-http.service.js';
import { tagSource } from '../source.errors.js';
import type { MetricSpec, PollContext, SourceBatch, SourceProvider } from '../source.types.js';

/** The real feed is ~0.4 MB / ~2,500 records a day; ten times that is garbage, not data. */
export const SENTICRYPT_V1_MAX_RECORDS = 25_000;

export interface SenticryptV1Options {
  url: string;
  /** SENTIMENT_API_MAX_BYTES. */
  maxBytes: number;
}

interface V1Record {
  timestamp: number;
  price: number;
  sentiment: number;
}

/** The record's epoch ms timestamp, or why it is rejected. */
function timestampOf(raw: unknown): number | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'record is not an object';
  const ts = numberField((raw as Record<string, unknown>).timestamp, 'timestamp', { numbers: true });
  if (typeof ts === 'string') return ts;
  const timestamp = Math.trunc(ts * 1000);
  if (timestamp <= 0 || !Number.isSafeInteger(timestamp)) return 'timestamp is out of range';
  if (timestamp < EARLIEST_SAMPLE_MS) return `timestamp ${BEFORE_BITCOIN}`;
  return timestamp;
}

function fieldsOf(r: Record<string, unknown>, timestamp: number): V1Record | string {
  const price = priceField(r.btc_price, 'btc_price', { numbers: true, strings: true });
  if (typeof price === 'string') return price;
  const sentiment = numberField(r.mean, 'mean', { numbers: true });
  if (typeof sentiment === 'string') return sentiment;
  if (sentiment < -1 || sentiment > 1) return 'mean is outside -1..1';
  return { timestamp, price, sentiment };
}

/**
 * Validates a decoded v1 payload. Records with a valid timestamp not newer than `since` are only
 * counted as skipped (the feed repeats the last 24 h on every poll: a bad record is reported
 * while it could still be stored, not on every poll for a day). Not an array, too many records,
 * or mostly invalid records: PayloadError.
 */
export async function parseSenticryptV1(payload: unknown, since: number | null, attempts: number): Promise<SourceBatch> {
  const records = arrayOf(payload, SENTICRYPT_V1_MAX_RECORDS);
  const t = await tally<V1Record>(records, (raw) => {
    const timestamp = timestampOf(raw);
    if (typeof timestamp === 'number' && since !== null && timestamp <= since) return SKIP;
    return typeof timestamp === 'string' ? timestamp : fieldsOf(raw as Record<string, unknown>, timestamp);
  });
  assertMostlyValid(t);
  const price: Sample[] = [];
  const sentiment: Sample[] = [];
  for (const r of t.values) {
    price.push({ timestamp: r.timestamp, value: r.price });
    sentiment.push({ timestamp: r.timestamp, value: r.sentiment });
  }
  return {
    samples: { price: sortedSamples(price), sentiment: sortedSamples(sentiment) },
    fetched: t.fetched,
    skipped: t.skipped,
    invalid: t.invalid,
    invalidReasons: t.invalidReasons,
    attempts,
  };
}

export class SenticryptV1Provider implements SourceProvider {
  readonly id = 'senticrypt-v1' as const;
  readonly metrics: readonly MetricSpec[] = [
    { metric: 'price', unit: 'USD', cadence: 'tick' },
    { metric: 'sentiment', unit: 'score -1..1', cadence: 'tick' },
  ];

  constructor(
    private readonly http: SourceHttpClient,
    private readonly options: SenticryptV1Options,
  ) {}

  /**
   * The feed's whole payload (the last 24 h), less what is not newer than `since`. With
   * `since: null` this is also the backfill: the feed has no other history.
   */
  poll(context: PollContext): Promise<SourceBatch> {
    return tagSource(this.id, async () => {
      const { data, attempts } = await this.http.getJson(this.options.url, { source: this.id, maxBytes: this.options.maxBytes, allowFile: true });
      return parseSenticryptV1(data, context.since, attempts);
    });
  }
}
