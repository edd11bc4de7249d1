import { BadRequestException, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { badRequestOnRangeError } from '../common/errors.js';
import { CompactionService } from '../series/compaction.service.js';
import { compositeSeries } from '../series/composite.js';
import { fittingTiers, SeriesDef } from '../series/series.catalog.js';
import { SeriesRepository } from '../series/series.repository.js';
import { MetricName } from '../sources/source.types.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { Aggregation, Sample, SeriesInfo } from '../timeseries/timeseries.types.js';
import { RawReadGate } from '../timeseries/raw-read-gate.service.js';
import { UnsupportedAggregationError } from '../timeseries/wire.js';
import { SeriesInfoDto } from './dto/series-info.dto.js';
import { SeriesQueryDto } from './dto/series-query.dto.js';
import {
  addPartials,
  COMPACTED,
  COMPONENTS,
  foldPartials,
  Partials,
  Plan,
  planQuery,
  rawSpanProblem,
  resolveWindow,
  TierCoverage,
} from './history-query.js';

export interface ResolvedQuery {
  from: number;
  to: number;
  bucketMs: number;
  aggregation: Aggregation;
}

export interface SeriesResult {
  samples: Sample[];
  /** How it was answered: the compaction tiers used, coarsest first, and `raw` (e.g. `1d+1h+raw`, `5m+raw`). */
  source: string;
}

const SPREADS: ReadonlySet<Aggregation> = new Set(['std.p', 'std.s', 'var.p', 'var.s']);

/** Why a query the compactions could answer reads raw samples anyway. */
const NOT_COVERED = {
  what: 'The part of this range the compactions do not cover (yet)',
  hint: 'use a shorter range, or retry once the compactions cover it',
};

/**
 * A std/var bucket as a number JSON can carry. RedisTimeSeries' variance formula (both backends
 * use it) rounds to slightly below zero for a bucket whose samples are all equal (one sample,
 * say): TS.RANGE then gives var -2.4e-7 and std nan, which JSON turns into null ("no sample").
 * Such a bucket's spread is 0.
 */
function spreadOf(sample: Sample): Sample {
  return sample.value >= 0 ? sample : { timestamp: sample.timestamp, value: 0 };
}

/** GET /series…: validated history queries, answered from compactions where they are exact. */
@Injectable()
export class HistoryService {
  private readonly maxPoints: number;
  private readonly maxRawSpanMs: number;
  private readonly outlierPct: number;
  /** The compactions' coverage the last query of each kind (series, components, fitting tiers) saw. */
  private readonly coverageSeen = new Map<string, TierCoverage[]>();

  constructor(
    private readonly timeseries: TimeseriesService,
    private readonly compactions: CompactionService,
    private readonly repository: SeriesRepository,
    private readonly gate: RawReadGate,
    config: ConfigService<Env, true>,
  ) {
    this.maxPoints = config.get('SERIES_MAX_POINTS', { infer: true });
    this.maxRawSpanMs = config.get('SERIES_MAX_RAW_SPAN_MS', { infer: true });
    this.outlierPct = config.get('PRICE_OUTLIER_PCT', { infer: true });
  }

  /**
   * Defaults: `to` = the newest sample of `metric` (of either metric for /series/combined; now when there is none), `from` =
   * 24 h before `to`, bucket 1h, avg. Every problem is a 400 that names the parameter.
   */
  async resolve(query: SeriesQueryDto, metric?: MetricName): Promise<ResolvedQuery> {
    const window = await badRequestOnRangeError(resolveWindow(query, () => this.latestTimestamp(metric), this.maxPoints, ' per series'));
    return { ...window, aggregation: query.aggregation ?? 'avg' };
  }

  /**
   * A metric's history: its one series, or for price from several venues (PRICE_SOURCE a list)
   * the composite: each venue's buckets with the same aggregation, then per bucket the median
   * across the venues with a value in it, a price level (avg, min, max, first, last, twa) more
   * than PRICE_OUTLIER_PCT from the other venues' median left out (see compositeSeries). Its
   * `source` then says each venue's: `median(coinbase:1h+raw kraken:raw)`. `source` (the query's)
   * picks one configured venue instead: a 400 for any other.
   */
  async series(metric: MetricName, q: ResolvedQuery, source?: string): Promise<SeriesResult> {
    const defs = this.repository.defs(metric);
    if (source !== undefined) {
      const def = this.repository.find(metric, source);
      if (!def) {
        throw new BadRequestException(`source must be one of the configured ${metric} sources: ${defs.map((d) => d.source).join(', ')} (got "${source}")`);
      }
      return this.seriesOf(def, q);
    }
    if (defs.length === 1) return this.seriesOf(defs[0], q);
    const venues = await Promise.all(defs.map((d) => this.seriesOf(d, q)));
    const composite = compositeSeries(
      defs.map((d, i) => ({ source: d.source, samples: venues[i].samples })),
      this.outlierPct,
      q.aggregation,
    );
    return { samples: composite.samples, source: `median(${defs.map((d, i) => `${d.source}:${venues[i].source}`).join(' ')})` };
  }

  /**
   * The same buckets TS.RANGE … AGGREGATION would give on one raw series, taken from the
   * coarsest compaction that holds them exactly plus the raw series for the rest.
   */
  private async seriesOf(def: SeriesDef, q: ResolvedQuery): Promise<SeriesResult> {
    const components = COMPONENTS[q.aggregation];
    const fitting = fittingTiers(this.compactions.tiers, q.bucketMs);
    if (!components || fitting.length === 0) {
      const why = components
        ? { what: `a bucket of ${q.bucketMs} ms (no compaction tier divides it)`, hint: 'use a shorter range, or a bucket of whole hours' }
        : { what: `aggregation=${q.aggregation}`, hint: 'use a shorter range, or avg, sum, count, min, max, range, first or last' };
      return this.read(def, q, null, why);
    }
    // The plan needs the compactions' coverage (one round trip) before the reads (another).
    // Coverage moves once per tier bucket, so the reads planned on the coverage the previous
    // query of this kind saw are sent together with the coverage reads, and kept when the
    // fresh coverage gives the same plan (the same reads); otherwise the reads are redone.
    const kind = `${def.key} ${components.join(',')} ${fitting.map((t) => t.name).join(',')}`;
    const seen = this.coverageSeen.get(kind);
    const guess = seen ? planQuery(q, seen) : undefined;
    const [coverage, early] = await Promise.all([
      this.compactions.coverage(def, components, q.bucketMs),
      guess === undefined ? undefined : this.read(def, q, guess).catch(() => undefined), // redone below if needed
    ]);
    if (this.coverageSeen.size >= 100) this.coverageSeen.clear(); // a few kinds in practice; bounded anyway
    this.coverageSeen.set(kind, coverage);
    const plan = planQuery(q, coverage);
    if (early !== undefined && JSON.stringify(plan) === JSON.stringify(guess)) return early;
    return this.read(def, q, plan);
  }

  /**
   * The answer of one plan: the raw series alone (null), or compactions and raw pieces folded.
   * What it reads of the raw series is bounded first (`why` it reads raw samples, for the 400).
   */
  private async read(def: SeriesDef, q: ResolvedQuery, plan: Plan | null, why = NOT_COVERED): Promise<SeriesResult> {
    const raw = def.key;
    const components = COMPONENTS[q.aggregation];
    const rawSpan = plan ? plan.pieces.reduce((sum, p) => (p.tierMs === null ? sum + p.to - p.from : sum), 0) : q.to - q.from;
    const problem = rawSpanProblem(rawSpan, def.retentionMs, this.maxRawSpanMs, why.what, why.hint);
    if (problem) throw new BadRequestException(problem);
    if (!components || !plan) {
      const samples = await this.gate
        .run(rawSpan, () => this.timeseries.range({ key: raw, from: q.from, to: q.to, aggregation: { type: q.aggregation, bucketMs: q.bucketMs } }))
        .catch((err: unknown) => {
          // The backend decides (twa on the portable one), also when it is not known yet.
          throw err instanceof UnsupportedAggregationError ? new BadRequestException(err.message) : err;
        });
      return { samples: SPREADS.has(q.aggregation) ? samples.map(spreadOf) : samples, source: 'raw' };
    }
    // Every piece and component in one rangeMany: one round trip (one script call on the
    // portable backend, which also reads a raw edge once for all its components).
    const reads = plan.pieces.flatMap(({ tierMs, from, to }) => {
      const tier = tierMs === null ? null : this.compactions.tiers.find((t) => t.bucketMs === tierMs);
      if (tier === undefined) throw new Error(`No compaction tier of ${tierMs} ms`);
      return components.map((component) => ({
        component,
        query: tier
          ? { key: this.compactions.key(def, component, tier), from, to }
          : { key: raw, from, to, aggregation: { type: component, bucketMs: plan.rawBucketMs } },
      }));
    });
    const answers = await this.gate.run(rawSpan, () => this.timeseries.rangeMany(reads.map((r) => r.query)));
    const partials: Partials = new Map();
    reads.forEach((r, i) => addPartials(partials, r.component, answers[i]));
    const used = this.compactions.tiers
      .filter((t) => plan.pieces.some((p) => p.tierMs === t.bucketMs))
      .sort((a, b) => b.bucketMs - a.bucketMs)
      .map((t) => t.name);
    if (plan.pieces.some((p) => p.tierMs === null)) used.push('raw');
    return { samples: foldPartials(partials, q.bucketMs, q.aggregation), source: used.join('+') };
  }

  /** Every series the service keeps (raw and compactions), with TS.INFO. */
  async list(): Promise<SeriesInfoDto[]> {
    const entries: Array<{ def: SeriesDef; key: string }> = [];
    for (const def of this.repository.catalog) {
      entries.push({ def, key: def.key });
      for (const tier of this.compactions.tiers) {
        for (const aggregation of COMPACTED) entries.push({ def, key: this.compactions.key(def, aggregation, tier) });
      }
    }
    const infos = await Promise.all(entries.map((e) => this.timeseries.info(e.key)));
    return entries.flatMap((e, i) => (infos[i] ? [toDto(e.def, infos[i])] : []));
  }

  /** The newest sample of `metric`'s series (of every series without one): the default `to`. */
  private async latestTimestamp(metric?: MetricName): Promise<number> {
    const defs = metric ? this.repository.defs(metric) : this.repository.catalog;
    const latest = await Promise.all(defs.map((d) => this.repository.latest(d)));
    const stamps = latest.flatMap((s) => (s ? [s.timestamp] : []));
    return stamps.length ? Math.max(...stamps) : Date.now();
  }
}

function toDto(def: SeriesDef, info: SeriesInfo): SeriesInfoDto {
  const iso = (t: number) => (info.totalSamples > 0 ? new Date(t).toISOString() : null);
  return {
    key: info.key,
    metric: def.metric,
    source: def.source,
    unit: def.unit,
    labels: info.labels,
    retentionMs: info.retentionMs,
    duplicatePolicy: info.duplicatePolicy,
    totalSamples: info.totalSamples,
    firstTimestamp: info.firstTimestamp,
    lastTimestamp: info.lastTimestamp,
    firstTime: iso(info.firstTimestamp),
    lastTime: iso(info.lastTimestamp),
    sourceKey: info.sourceKey,
    rules: info.rules.map((r) => ({ destKey: r.destKey, aggregation: r.aggregation, bucketMs: r.bucketMs })),
  };
}
