import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { AddReport, TimeseriesService } from '../timeseries/timeseries.service.js';
import { Sample } from '../timeseries/timeseries.types.js';
import { COMPACTED, Compacted, compactionTiers, fittingTiers, SeriesDef, Tier, TierCoverage } from './series.catalog.js';

/**
 * Label on each compaction: epoch ms from which its buckets are complete. Rules do not
 * back-fill, so buckets up to the one holding the source's newest sample at rule creation miss
 * samples; queries read those from the raw series instead.
 */
export const COMPLETE_FROM_LABEL = 'complete_from';

/**
 * Hourly, daily and 5-minute compactions (sum, count, min, max, first, last) of every raw series
 * in the catalog, created idempotently with the series, and what each one can answer.
 */
@Injectable()
export class CompactionService {
  private readonly logger = new Logger(CompactionService.name);
  readonly tiers: Tier[];

  constructor(
    private readonly timeseries: TimeseriesService,
    private readonly keys: RedisKeys,
    config: ConfigService<Env, true>,
  ) {
    this.tiers = compactionTiers({
      hourlyMs: config.get('TIMESERIES_HOURLY_RETENTION_MS', { infer: true }),
      dailyMs: config.get('TIMESERIES_DAILY_RETENTION_MS', { infer: true }),
      fiveMinuteMs: config.get('TIMESERIES_5MIN_TIER', { infer: true }) ? config.get('TIMESERIES_5MIN_RETENTION_MS', { infer: true }) : undefined,
    });
  }

  key(series: SeriesDef, aggregation: Compacted, tier: Tier): string {
    return this.keys.compaction(series.key, aggregation, tier.name);
  }

  /** Creates (or checks) every compaction series and rule of these raw series, which must exist. */
  async ensureAll(defs: readonly SeriesDef[]): Promise<void> {
    let created = 0;
    for (const def of defs) {
      for (const tier of this.tiers) {
        for (const aggregation of COMPACTED) {
          if (await this.ensure(def, aggregation, tier)) created++;
        }
      }
    }
    if (created > 0) this.logger.log(`created ${created} compaction rule(s)`);
  }

  private async ensure(def: SeriesDef, aggregation: Compacted, tier: Tier): Promise<boolean> {
    const source = def.key;
    const dest = this.key(def, aggregation, tier);
    const labels = { ...def.labels, aggregation, bucket: tier.name };
    const known = (await this.timeseries.info(dest))?.labels[COMPLETE_FROM_LABEL];
    const withMark = (mark: string | undefined) => (mark === undefined ? labels : { ...labels, [COMPLETE_FROM_LABEL]: mark });
    // The destination must exist before TS.CREATERULE; keep its mark while bringing settings up to date.
    await this.timeseries.ensureSeries(dest, { retentionMs: tier.retentionMs, labels: withMark(known) });
    const rule = await this.timeseries.ensureRule(source, { destKey: dest, aggregation, bucketMs: tier.bucketMs });
    let mark = known;
    if (rule.created) {
      const latest = rule.sourceLatestAtCreation;
      mark = String(latest ? bucketEnd(latest.timestamp, tier.bucketMs) : 0);
    } else if (mark === undefined) {
      // The rule exists but its mark was never written (stopped in between): assume it missed
      // everything up to the source's current newest bucket.
      const latest = await this.timeseries.latest(source);
      mark = String(latest ? bucketEnd(latest.timestamp, tier.bucketMs) : 0);
    }
    if (mark !== known) await this.timeseries.ensureSeries(dest, { retentionMs: tier.retentionMs, labels: withMark(mark) });
    return rule.created;
  }

  /**
   * Start of the coarsest bucket holding `timestamp`: the first bucket a rule writes when the
   * raw series' first sample is at `timestamp`. Anything older is never written by a rule.
   */
  firstRuleBucket(timestamp: number): number {
    const coarsest = Math.max(...this.tiers.map((t) => t.bucketMs));
    return timestamp - (timestamp % coarsest);
  }

  /**
   * Writes samples straight into every compaction of `def`: per tier and bucket, the sum, count,
   * min, max, first and last the rules compute (in time order, so sums round the same way), as
   * if the samples had been added to the raw series. Only for buckets no rule writes (older than
   * firstRuleBucket of the raw series' first sample): RedisTimeSeries lets TS.MADD write a rule's
   * destination, but the rule would overwrite a bucket it also computes. The destinations keep
   * DUPLICATE_POLICY FIRST, so writing the same history twice stores nothing twice. Returns the
   * outcome per sample: that of its bucket in the `count` of the tier that keeps the samples
   * longest among those with one bucket per sample (hourly history: the hourly tier; the 5 min
   * one holds each close in a bucket of its own too, but drops all but its last days, refusing
   * them as older than its retention when written again).
   */
  async addHistory(def: SeriesDef, samples: Sample[]): Promise<AddReport> {
    const sorted = [...samples].sort((a, b) => a.timestamp - b.timestamp);
    const keeps = (t: Tier) => (t.retentionMs === 0 ? Infinity : t.retentionMs);
    let report: AddReport = { stored: 0, duplicates: 0, rejected: 0, errors: [] };
    let reportedBy: Tier | undefined;
    for (const tier of this.tiers) {
      const buckets = bucketAggregates(sorted, tier.bucketMs);
      const written = await Promise.all(
        COMPACTED.map((aggregation) =>
          this.timeseries.add(this.key(def, aggregation, tier), buckets.map((b) => ({ timestamp: b.timestamp, value: b[aggregation] }))),
        ),
      );
      if (buckets.length === sorted.length && (!reportedBy || keeps(tier) > keeps(reportedBy))) {
        report = written[COMPACTED.indexOf('count')];
        reportedBy = tier;
      }
    }
    return report;
  }

  /**
   * For each tier that fits `bucketMs` (fittingTiers: its bucket divides the requested one), the
   * buckets complete in all the given compactions: from the latest complete_from mark (and the
   * compactions' own retention) up to the source's open bucket, which the rule writes only when
   * a later sample arrives. No tier fits (a 30 s or 90 min bucket): no Redis call at all.
   */
  async coverage(def: SeriesDef, components: readonly Compacted[], bucketMs: number): Promise<TierCoverage[]> {
    const fitting = fittingTiers(this.tiers, bucketMs);
    if (fitting.length === 0) return [];
    // The source's newest sample and the compactions' marks, read together (one round trip).
    const [sourceLatest, infosByTier] = await Promise.all([
      this.timeseries.latest(def.key),
      Promise.all(fitting.map((tier) => Promise.all(components.map((c) => this.timeseries.info(this.key(def, c, tier)))))),
    ]);
    return fitting.map((tier, t): TierCoverage => {
      if (!sourceLatest) return { bucketMs: tier.bucketMs, complete: null };
      let from = 0;
      for (const info of infosByTier[t]) {
        const mark = info?.labels[COMPLETE_FROM_LABEL];
        if (!info || mark === undefined || !/^\d+$/.test(mark)) return { bucketMs: tier.bucketMs, complete: null };
        from = Math.max(from, Number(mark));
        if (info.retentionMs > 0 && info.lastTimestamp > info.retentionMs) {
          from = Math.max(from, info.lastTimestamp - info.retentionMs);
        }
      }
      const to = sourceLatest.timestamp - (sourceLatest.timestamp % tier.bucketMs);
      return { bucketMs: tier.bucketMs, complete: from < to ? { from, to } : null };
    });
  }
}

/** Per epoch-aligned bucket of the (time-ordered) samples, every COMPACTED aggregate, as a rule accumulates it. */
export function bucketAggregates(samples: readonly Sample[], bucketMs: number): Array<{ timestamp: number } & Record<Compacted, number>> {
  const out: Array<{ timestamp: number } & Record<Compacted, number>> = [];
  for (const { timestamp, value } of samples) {
    const start = timestamp - (timestamp % bucketMs);
    const b = out.at(-1);
    if (b && b.timestamp === start) {
      b.sum += value;
      b.count++;
      b.min = Math.min(b.min, value);
      b.max = Math.max(b.max, value);
      b.last = value;
    } else {
      out.push({ timestamp: start, sum: value, count: 1, min: value, max: value, first: value, last: value });
    }
  }
  return out;
}

/** Start of the bucket after the one holding `timestamp`. */
function bucketEnd(timestamp: number, bucketMs: number): number {
  return timestamp - (timestamp % bucketMs) + bucketMs;
}
