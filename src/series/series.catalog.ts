/**
 * The catalog of series, as data: for each metric, the one series the configured source feeds
 * (key, labels with source and unit, retention, cadence) and the compaction tiers every raw
 * series gets. Built once at startup from the configuration; nothing else decides keys or
 * labels.
 */
import type { MetricName, MetricSpec, SourceId } from '../sources/source.types.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** Aggregations the compactions keep; each combines exactly across finer buckets. */
export const COMPACTED = ['sum', 'count', 'min', 'max', 'first', 'last'] as const;
export type Compacted = (typeof COMPACTED)[number];

/** A compaction tier: every raw series gets each COMPACTED aggregation at each tier. */
export interface Tier {
  /** Key suffix and label value: `1h`, `1d`. */
  name: string;
  bucketMs: number;
  retentionMs: number;
}

export interface TierCoverage {
  bucketMs: number;
  /** [from, to): closed buckets known to be complete in every needed compaction; null if none. */
  complete: { from: number; to: number } | null;
}

export interface SeriesDef {
  metric: MetricName;
  source: SourceId;
  /** 'USD', 'score -1..1', 'index 0..100'. */
  unit: string;
  cadence: MetricSpec['cadence'];
  /** The raw series' key. */
  key: string;
  retentionMs: number;
  labels: Record<string, string>;
}

export const APP_LABEL = 'is-bitcoin-lit';

/**
 * Labels of a raw series. SentiCrypt v1 keeps the labels it always had (`source=senticrypt`),
 * so an upgraded deployment's series are left exactly as they were.
 */
export function seriesLabels(metric: MetricName, source: SourceId, unit: string): Record<string, string> {
  return source === 'senticrypt-v1'
    ? { metric, source: 'senticrypt', app: APP_LABEL }
    : { metric, source, unit, app: APP_LABEL };
}

export function compactionTiers(hourlyRetentionMs: number, dailyRetentionMs: number): Tier[] {
  return [
    { name: '1h', bucketMs: HOUR_MS, retentionMs: hourlyRetentionMs },
    { name: '1d', bucketMs: DAY_MS, retentionMs: dailyRetentionMs },
  ];
}
