/**
 * The catalog of series, as data: for each metric, the one series the configured source feeds
 * (key, labels with source and unit, retention, cadence) and the compaction tiers every raw
 * series gets. Built once at startup from the configuration; nothing else decides keys or
 * labels.
 */
import type { MetricName, MetricSpec, SourceId } from '../sources/source.types.js';

export const FIVE_MINUTES_MS = 300_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** Aggregations the compactions keep; each combines exactly across finer buckets. */
export const COMPACTED = ['sum', 'count', 'min', 'max', 'first', 'last'] as const;
export type Compacted = (typeof COMPACTED)[number];

/** A compaction tier: every raw series gets each COMPACTED aggregation at each tier. */
export interface Tier {
  /** Key suffix and label value: `5m`, `1h`, `1d`. */
  name: string;
  bucketMs: number;
  retentionMs: number;
  /**
   * Whether the tier also answers the edges of a query a coarser tier fits (the hours around
   * the days of a 1 d query). The 5 min tier does not: an hour-multiple query's raw edges are at
   * most an hour of samples, and its answer stays what it was (a 1 h avg bit for bit the raw
   * one, as the summary's hours are; the same X-Series-Source).
   */
  underCoarser: boolean;
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

/**
 * The tiers every raw series gets, in the order their rules were added over the releases (a new
 * tier goes last, so an upgraded deployment's rules and /series listing only gain entries at
 * their end); the 5-minute one only when asked for (`fiveMinuteMs` set).
 */
export function compactionTiers(retention: { hourlyMs: number; dailyMs: number; fiveMinuteMs?: number }): Tier[] {
  return [
    { name: '1h', bucketMs: HOUR_MS, retentionMs: retention.hourlyMs, underCoarser: true },
    { name: '1d', bucketMs: DAY_MS, retentionMs: retention.dailyMs, underCoarser: true },
    ...(retention.fiveMinuteMs === undefined ? [] : [{ name: '5m', bucketMs: FIVE_MINUTES_MS, retentionMs: retention.fiveMinuteMs, underCoarser: false }]),
  ];
}

/**
 * The tiers that may answer a query in buckets of `bucketMs`: those whose bucket divides it
 * (each of their buckets lies in one requested bucket), less any that only answers queries no
 * coarser tier fits (see Tier.underCoarser). In `tiers` order.
 */
export function fittingTiers(tiers: readonly Tier[], bucketMs: number): Tier[] {
  const dividing = tiers.filter((t) => bucketMs % t.bucketMs === 0);
  const coarsest = Math.max(...dividing.map((t) => t.bucketMs));
  return dividing.filter((t) => t.underCoarser || t.bucketMs === coarsest);
}
