/**
 * Request-side rules shared by both backends, so they validate and word things identically.
 * Error texts are RedisTimeSeries' own (src/module.c), without the "ERR " prefix the server
 * may put in front of them.
 */
import { AGGREGATIONS, type AddOutcome, type CompactionRule, type RangeQuery, type ReportedRule, type Sample, type SeriesOptions } from './timeseries.types.js';

export const TSDB_ERRORS = {
  invalidValue: 'TSDB: invalid value',
  invalidTimestamp: 'TSDB: invalid timestamp',
  negativeTimestamp: 'TSDB: invalid timestamp, must be a nonnegative integer',
  olderThanRetention: 'TSDB: Timestamp is older than retention',
  /** What TS.MADD answers for a missing key as well as for a key of another type. */
  notATsdbKey: 'TSDB: the key is not a TSDB key',
} as const;

/** An aggregation this backend cannot compute (the portable backend and twa). */
export class UnsupportedAggregationError extends Error {
  override readonly name = 'UnsupportedAggregationError';
}

/** The key exists but holds something other than a time series. */
export class NotATimeSeriesError extends Error {
  constructor(
    readonly key: string,
    detail?: string,
  ) {
    super(`Redis key "${key}" exists but is not a time series${detail ? ` (${detail})` : ''}`);
    this.name = 'NotATimeSeriesError';
  }
}

/**
 * The value as sent to Redis. String(number) is the shortest text that parses back to the same
 * double; -0 is spelled out because String(-0) is "0".
 */
export function formatValue(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

/**
 * Why RedisTimeSeries would refuse this sample before looking at the series, or undefined.
 * Same order as the module's add(): the value is parsed first, then the timestamp.
 */
export function sampleRejection(sample: Sample): AddOutcome | undefined {
  if (typeof sample.value !== 'number' || !Number.isFinite(sample.value)) {
    return { status: 'rejected', reason: TSDB_ERRORS.invalidValue };
  }
  if (!Number.isSafeInteger(sample.timestamp)) {
    return { status: 'rejected', reason: TSDB_ERRORS.invalidTimestamp };
  }
  if (sample.timestamp < 0) return { status: 'rejected', reason: TSDB_ERRORS.negativeTimestamp };
  return undefined;
}

export function assertSeriesOptions(options: SeriesOptions): void {
  if (!Number.isSafeInteger(options.retentionMs) || options.retentionMs < 0) {
    throw new RangeError(`retentionMs must be a non-negative integer, got ${options.retentionMs}`);
  }
  for (const [name, value] of Object.entries(options.labels)) {
    // RedisTimeSeries refuses empty label names/values ("TSDB: Couldn't parse LABELS").
    if (name === '' || typeof value !== 'string' || value === '') {
      throw new RangeError(`Label "${name}" must have a non-empty name and string value`);
    }
    // It also refuses a value holding '(', ')' or ',' (parseLabelsFromArgs: they would break
    // TS.MRANGE FILTER's l=(v1,v2) lists), so the portable backend must refuse it too.
    if (/[(),]/.test(value)) {
      throw new RangeError(`Label "${name}" value must not contain "(", ")" or ",", got ${JSON.stringify(value)}`);
    }
  }
}

export function assertRangeQuery(query: RangeQuery): void {
  for (const bound of [query.from, query.to]) {
    if (!Number.isSafeInteger(bound) || bound < 0) {
      throw new RangeError(`Range bounds must be non-negative integer epoch ms, got ${bound}`);
    }
  }
  if (query.aggregation) {
    const { type, bucketMs } = query.aggregation;
    if (!(AGGREGATIONS as readonly string[]).includes(type)) throw new RangeError(`Unknown aggregation ${type}`);
    if (!Number.isSafeInteger(bucketMs) || bucketMs <= 0) {
      throw new RangeError(`bucketMs must be a positive integer, got ${bucketMs}`);
    }
  }
}

/** A compaction rule into `destKey` exists with another aggregation or bucket. */
export class RuleConflictError extends Error {
  constructor(source: string, wanted: CompactionRule, existing: ReportedRule) {
    super(
      `Compaction rule ${source} → ${wanted.destKey} exists as ${existing.aggregation} ${existing.bucketMs} ms${existing.alignMs ? ` aligned to ${existing.alignMs}` : ''}, not ${wanted.aggregation} ${wanted.bucketMs} ms${wanted.alignMs ? ` aligned to ${wanted.alignMs}` : ''} (delete it with TS.DELETERULE, or the destination key, to change it)`,
    );
    this.name = 'RuleConflictError';
  }
}

/**
 * Rules we can create: an aggregation both backends compact the same way (not twa, which the
 * portable backend does not implement), a positive integer bucket, distinct keys.
 */
export function assertRule(source: string, rule: CompactionRule): void {
  if (source === rule.destKey) throw new RangeError('A compaction rule needs distinct source and destination keys');
  if (rule.aggregation === 'twa' || !(AGGREGATIONS as readonly string[]).includes(rule.aggregation)) {
    throw new RangeError(`Unsupported compaction aggregation ${rule.aggregation}`);
  }
  if (!Number.isSafeInteger(rule.bucketMs) || rule.bucketMs <= 0) {
    throw new RangeError(`bucketMs must be a positive integer, got ${rule.bucketMs}`);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A server error's text without the generic "ERR " code, e.g. "TSDB: invalid value". */
export function errorReason(err: unknown): string {
  return errorMessage(err).replace(/^ERR /, '');
}

/** TS.RANGE / TS.GET / TS.INFO / TS.ALTER on a missing key. */
export function isKeyMissingError(err: unknown): boolean {
  return /TSDB: (the )?key does not exist/i.test(errorMessage(err));
}
