/**
 * The time-series contract shared by both backends. Semantics follow the RedisTimeSeries
 * command docs (TS.CREATE, TS.MADD, TS.RANGE, TS.GET): the portable backend must give the
 * same answers as the native one for the same inserts.
 */

/** Aggregators of TS.RANGE … AGGREGATION, as RedisTimeSeries names them. */
export const AGGREGATIONS = [
  'avg',
  'sum',
  'min',
  'max',
  'range',
  'count',
  'first',
  'last',
  'std.p',
  'std.s',
  'var.p',
  'var.s',
  'twa',
] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export type BackendKind = 'native' | 'portable';

export interface Sample {
  /** Epoch milliseconds (integer). */
  timestamp: number;
  value: number;
}

export interface SeriesOptions {
  /** Max age of samples relative to the newest one, in ms; 0 keeps everything. */
  retentionMs: number;
  labels: Record<string, string>;
}

/** Outcome of one sample of a TS.MADD call, in the order the samples were given. */
export type AddOutcome =
  | { status: 'stored' }
  /** A sample already existed at that timestamp; DUPLICATE_POLICY FIRST kept the old one. */
  | { status: 'duplicate' }
  /** The server refused this sample (e.g. older than retention); `reason` is its error text. */
  | { status: 'rejected'; reason: string };

export interface RangeQuery {
  key: string;
  /** Inclusive, epoch ms. */
  from: number;
  /** Inclusive, epoch ms. */
  to: number;
  aggregation?: { type: Aggregation; bucketMs: number };
}

/** A compaction rule of a source series (TS.CREATERULE source destKey AGGREGATION aggregation bucketMs). */
export interface CompactionRule {
  destKey: string;
  aggregation: Aggregation;
  bucketMs: number;
  /**
   * TS.CREATERULE's alignTimestamp, as TS.INFO reports it, when not 0. Ours are 0 (epoch-aligned
   * buckets, what history plans on); only a rule created by hand has another.
   */
  alignMs?: number;
}

export interface SeriesInfo {
  key: string;
  totalSamples: number;
  firstTimestamp: number;
  lastTimestamp: number;
  retentionMs: number;
  duplicatePolicy: string;
  labels: Record<string, string>;
  /** The series this one is a compaction of, or null. */
  sourceKey: string | null;
  /** Compaction rules with this series as the source, in creation order. */
  rules: ReportedRule[];
}

/**
 * A rule as TS.INFO reports it: its aggregator may be one this service never creates (one made
 * by hand with an aggregator of a newer RedisTimeSeries, such as countNaN on 8.6), lowercased.
 */
export type ReportedRule = Omit<CompactionRule, 'aggregation'> & { aggregation: Aggregation | (string & {}) };

/** What ensureRule did. */
export interface EnsuredRule {
  /** False when the same rule already existed (nothing changed). */
  created: boolean;
  /**
   * The source's newest sample at the moment the rule was created, read atomically with the
   * creation (null when the source was empty or the rule already existed). Rules do not
   * back-fill: buckets up to this sample's bucket are not (fully) in the destination.
   */
  sourceLatestAtCreation: Sample | null;
}

export interface TimeseriesBackend {
  readonly kind: BackendKind;
  /**
   * TS.CREATE … DUPLICATE_POLICY FIRST; an existing series is not an error: it is altered to
   * the given retention, labels and duplicate policy.
   */
  ensureSeries(key: string, options: SeriesOptions): Promise<void>;
  /**
   * TS.MADD for samples of ONE series (so the call touches one key / one cluster slot),
   * at most a bounded chunk; one outcome per sample, in order. Atomic per call.
   */
  addMany(key: string, samples: Sample[]): Promise<AddOutcome[]>;
  /** TS.RANGE, optionally with AGGREGATION type bucketMs (epoch-aligned, no empty buckets). */
  range(query: RangeQuery): Promise<Sample[]>;
  /**
   * `range` of each query, answers in the same order: on the portable backend one script call
   * per cluster slot (a raw series and its compactions share one), reading a series' span once
   * for several aggregations of the same bucket.
   */
  rangeMany(queries: RangeQuery[]): Promise<Sample[][]>;
  /** TS.GET: the latest sample, or null when the series is empty or missing. */
  latest(key: string): Promise<Sample | null>;
  /** TS.INFO, or null when the series does not exist. */
  info(key: string): Promise<SeriesInfo | null>;
  /**
   * TS.CREATERULE source dest AGGREGATION type bucketMs (epoch-aligned buckets), idempotent:
   * an identical existing rule is left alone; a different rule into the same destination is an
   * error. Both series must exist. From then on, every sample added to the source is aggregated
   * into dest; a bucket is written when a sample of a later bucket arrives, and a sample
   * inserted into an older bucket (out of order, or a duplicate) recomputes that bucket from
   * the source (RedisTimeSeries' upsert path). Samples present before the rule are not compacted.
   */
  ensureRule(source: string, rule: CompactionRule): Promise<EnsuredRule>;
}
