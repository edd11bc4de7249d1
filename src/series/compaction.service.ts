import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { AddReport, TimeseriesService } from '../timeseries/timeseries.service.js';
import { Sample } from '../timeseries/timeseries.types.js';
import { sampleRejection } from '../timeseries/wire.js';
import { COMPACTED, Compacted, compactionTiers, fittingTiers, SeriesDef, Tier, TierCoverage } from './series.catalog.js';

/**
 * Label on each compaction: epoch ms from which its buckets are complete. Rules do not
 * back-fill, so buckets up to the one holding the source's newest sample at rule creation miss
 * samples; queries read those from the raw series instead.
 */
export const COMPLETE_FROM_LABEL = 'complete_from';

/**
 * Label on a compaction whose rule was created over stored data, until it is settled: the
 * source's newest timestamp then. RedisTimeSeries re-reads the newest bucket into a rule's
 * running aggregate on an upsert (a duplicate or late sample there), even before the rule has
 * opened a bucket, and the bucket the rule then opens (that of the first sample added past this
 * timestamp) keeps that aggregate: it may also hold the older bucket's samples. Settling moves
 * complete_from past that bucket and drops this label (see settleAfterAdd).
 */
export const SETTLE_AFTER_LABEL = 'settle_after';

/** A compaction still to settle (SETTLE_AFTER_LABEL), known to this instance. */
interface Unsettled {
  dest: string;
  bucketMs: number;
  after: number;
}

/**
 * Hourly, daily and 5-minute compactions (sum, count, min, max, first, last) of every raw series
 * in the catalog, created idempotently with the series, and what each one can answer.
 */
@Injectable()
export class CompactionService {
  private readonly logger = new Logger(CompactionService.name);
  readonly tiers: Tier[];
  /** Per raw series key, its compactions still to settle (from ensureAll; rare: a tier added over data). */
  private readonly unsettled = new Map<string, Unsettled[]>();

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
    const knownLabels = (await this.timeseries.info(dest))?.labels;
    const known: Marks = { mark: knownLabels?.[COMPLETE_FROM_LABEL], settle: knownLabels?.[SETTLE_AFTER_LABEL] };
    const withMarks = ({ mark, settle }: Marks) => ({
      ...labels,
      ...(mark !== undefined && { [COMPLETE_FROM_LABEL]: mark }),
      ...(settle !== undefined && { [SETTLE_AFTER_LABEL]: settle }),
    });
    // The destination must exist before TS.CREATERULE; keep its marks while bringing settings up to date.
    await this.timeseries.ensureSeries(dest, { retentionMs: tier.retentionMs, labels: withMarks(known) });
    const rule = await this.timeseries.ensureRule(source, { destKey: dest, aggregation, bucketMs: tier.bucketMs });
    let marks = known;
    if (rule.created) {
      marks = marksAt(rule.sourceLatestAtCreation, tier.bucketMs);
    } else if (known.mark === undefined) {
      // The rule exists but its mark was never written (stopped in between): assume it missed
      // everything up to the source's current newest bucket.
      marks = marksAt(await this.timeseries.latest(source), tier.bucketMs);
    }
    if (marks.mark !== known.mark || marks.settle !== known.settle) {
      await this.timeseries.ensureSeries(dest, { retentionMs: tier.retentionMs, labels: withMarks(marks) });
    }
    const others = (this.unsettled.get(source) ?? []).filter((u) => u.dest !== dest);
    const after = timestampLabel(marks.settle);
    if (after !== undefined) others.push({ dest, bucketMs: tier.bucketMs, after });
    if (others.length > 0) this.unsettled.set(source, others);
    else this.unsettled.delete(source);
    return rule.created;
  }

  /** Whether `def` has compactions still to settle: its writes then go through settleAfterAdd. */
  hasUnsettled(def: SeriesDef): boolean {
    return this.unsettled.has(def.key);
  }

  /**
   * Settles what can be settled after `samples` were added, in that order, to the raw series of
   * `def`, whose newest sample was `before` just before and `after` just after. The first of them
   * past a compaction's settle_after timestamp opened its rule's first bucket: complete_from moves
   * past that bucket. Where that is not certain, past a bucket known to be no earlier:
   * - the series was already past it before this add (a write not followed by this: the process
   *   stopped in between, or an add that failed part way): `before`'s bucket;
   * - something else wrote samples newer than these meanwhile (a concurrent refresh): `after`'s.
   * Not caught: another writer storing, between the read of `before` and this add, a sample past
   * settle_after that this batch lacks, while this batch has earlier ones past it (a refresh on
   * another instance racing the first poll after the upgrade, with other data): one bucket read
   * wrong. Writers that do not settle (an instance without the tier, mid-rollout) are caught by
   * the first branch at the next settling write.
   * An unsettled compaction costs queries nothing but raw reads (see coverage), so it is settled
   * here, where the write that opened the first bucket is seen, and nowhere else.
   */
  async settleAfterAdd(def: SeriesDef, before: Sample | null, after: Sample | null, samples: readonly Sample[]): Promise<void> {
    const list = this.unsettled.get(def.key);
    if (!list) return;
    const stored = samples.filter((s) => sampleRejection(s) === undefined);
    const newestSent = stored.reduce((max, s) => Math.max(max, s.timestamp), -Infinity);
    const left: Unsettled[] = [];
    for (const u of list) {
      let bound: number | undefined;
      if (before !== null && before.timestamp > u.after) bound = before.timestamp;
      else if (after !== null && after.timestamp > u.after && after.timestamp > newestSent) bound = after.timestamp;
      else bound = stored.find((s) => s.timestamp > u.after)?.timestamp;
      if (bound === undefined) left.push(u);
      else await this.moveMark(u.dest, u.after, bucketEnd(bound, u.bucketMs));
    }
    if (left.length > 0) this.unsettled.set(def.key, left);
    else this.unsettled.delete(def.key);
  }

  /**
   * Moves complete_from of `dest` to at least `mark` and drops its settle_after label, unless
   * another writer already did (the label is gone or names another timestamp).
   */
  private async moveMark(dest: string, after: number, mark: number): Promise<void> {
    const info = await this.timeseries.info(dest);
    if (!info || info.labels[SETTLE_AFTER_LABEL] !== String(after)) return;
    const settled = Math.max(mark, timestampLabel(info.labels[COMPLETE_FROM_LABEL]) ?? 0);
    const { [SETTLE_AFTER_LABEL]: _dropped, ...labels } = info.labels;
    await this.timeseries.ensureSeries(dest, { retentionMs: info.retentionMs, labels: { ...labels, [COMPLETE_FROM_LABEL]: String(settled) } });
    this.logger.log(`${dest} is complete from ${new Date(settled).toISOString()} (its rule was created over stored data)`);
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
    return Promise.all(
      fitting.map(async (tier, t): Promise<TierCoverage> => {
        if (!sourceLatest) return { bucketMs: tier.bucketMs, complete: null };
        let from = 0;
        for (const info of infosByTier[t]) {
          const complete = timestampLabel(info?.labels[COMPLETE_FROM_LABEL]);
          if (!info || complete === undefined) return { bucketMs: tier.bucketMs, complete: null };
          const settle = info.labels[SETTLE_AFTER_LABEL];
          if (settle !== undefined) {
            // Not settled yet (settleAfterAdd, by the writer): the rule's first bucket is at the
            // latest the source's open one, which is never read from a compaction anyway. Until
            // the source goes past settle_after, no bucket after the mark is closed.
            if (timestampLabel(settle) === undefined) return { bucketMs: tier.bucketMs, complete: null };
            if (sourceLatest.timestamp > Number(settle)) return { bucketMs: tier.bucketMs, complete: null };
          }
          from = Math.max(from, complete);
          if (info.retentionMs > 0 && info.lastTimestamp > info.retentionMs) {
            from = Math.max(from, info.lastTimestamp - info.retentionMs);
          }
        }
        const to = sourceLatest.timestamp - (sourceLatest.timestamp % tier.bucketMs);
        return { bucketMs: tier.bucketMs, complete: from < to ? { from, to } : null };
      }),
    );
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

/** A label holding epoch ms, or undefined when it is missing or not such a number. */
function timestampLabel(value: string | undefined): number | undefined {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

interface Marks {
  mark: string | undefined;
  settle: string | undefined;
}

/** The marks of a compaction whose rule was created when the source's newest sample was `latest`. */
function marksAt(latest: Sample | null, bucketMs: number): Marks {
  if (!latest) return { mark: '0', settle: undefined };
  return { mark: String(bucketEnd(latest.timestamp, bucketMs)), settle: String(latest.timestamp) };
}

/** Start of the bucket after the one holding `timestamp`. */
function bucketEnd(timestamp: number, bucketMs: number): number {
  return timestamp - (timestamp % bucketMs) + bucketMs;
}
