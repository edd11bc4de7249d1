import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { isRedisUnavailableError } from '../redis/redis-errors.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { RedisClient } from '../redis/redis.types.js';
import { SourceRegistry } from '../sources/source.registry.js';
import { METRIC_NAMES, MetricName, SourceId } from '../sources/source.types.js';
import { AddReport, TimeseriesService } from '../timeseries/timeseries.service.js';
import { RangeQuery, Sample } from '../timeseries/timeseries.types.js';
import { CompactionService } from './compaction.service.js';
import { SeriesDef, seriesLabels } from './series.catalog.js';

/** A failed backfill to retry: where it starts, how many runs it has failed, and when it may run again (epoch ms). */
export interface PendingBackfill {
  from: number;
  failures: number;
  retryAt: number;
}

/** The hourly part of a first backfill to retry: PendingBackfill, and where it ends (the minutes start there). */
export interface PendingHourlyBackfill extends PendingBackfill {
  until: number;
}

/**
 * The series store: the catalog (one raw series per metric and configured source: sentiment's
 * one, and each price venue's own, labelled with its source),
 * its setup (TS.CREATE … DUPLICATE_POLICY FIRST and the compaction rules), writes, reads and
 * the per-source "last success" marks. The only place that knows the series' keys.
 */
@Injectable()
export class SeriesRepository implements OnModuleInit {
  private readonly logger = new Logger(SeriesRepository.name);
  readonly catalog: readonly SeriesDef[];
  private readonly byMetric: ReadonlyMap<MetricName, readonly SeriesDef[]>;
  private readonly degradedStart: boolean;

  constructor(
    private readonly timeseries: TimeseriesService,
    private readonly compactions: CompactionService,
    private readonly keys: RedisKeys,
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    registry: SourceRegistry,
    config: ConfigService<Env, true>,
  ) {
    const retentionMs = config.get('TIMESERIES_RETENTION_MS', { infer: true });
    this.catalog = METRIC_NAMES.flatMap((metric) =>
      registry.forMetric(metric).map(
        ({ provider, spec }): SeriesDef => ({
          metric,
          source: provider.id,
          unit: spec.unit,
          cadence: spec.cadence,
          key: keys.series(metric, provider.id),
          retentionMs,
          labels: seriesLabels(metric, provider.id, spec.unit),
        }),
      ),
    );
    this.byMetric = new Map(METRIC_NAMES.map((m) => [m, this.catalog.filter((d) => d.metric === m)]));
    this.degradedStart = config.get('REDIS_STARTUP_MODE', { infer: true }) === 'degraded';
  }

  /**
   * Creates the series and their compaction rules before anything is served or ingested (rules
   * only see samples added after them). Started degraded (no Redis yet), ingest does it later.
   */
  async onModuleInit(): Promise<void> {
    try {
      await this.ensureStorage();
    } catch (err) {
      if (!this.degradedStart || !isRedisUnavailableError(err)) throw err;
      this.logger.warn(`series not created yet (Redis unavailable); the first ingest run will: ${(err as Error).message}`);
    }
  }

  /** TS.CREATE every series of the catalog (an existing one is brought up to date), then the rules. */
  async ensureStorage(): Promise<void> {
    for (const def of this.catalog) {
      await this.timeseries.ensureSeries(def.key, { retentionMs: def.retentionMs, labels: def.labels });
    }
    await this.compactions.ensureAll(this.catalog);
  }

  /** The series of a metric, in the configured order: one for sentiment, one per venue for price. */
  defs(metric: MetricName): readonly SeriesDef[] {
    const defs = this.byMetric.get(metric);
    if (!defs?.length) throw new Error(`No series for metric ${metric}`);
    return defs;
  }

  /** The series `source` feeds for `metric`, or undefined when that source does not feed it here. */
  find(metric: MetricName, source: string): SeriesDef | undefined {
    return this.byMetric.get(metric)?.find((d) => d.source === source);
  }

  /** The series a source feeds in this deployment (v1 may feed both, or only one of them). */
  ofSource(source: SourceId): SeriesDef[] {
    return this.catalog.filter((d) => d.source === source);
  }

  /** The newest sample of a series (TS.GET), or null when it is empty or missing. */
  latest(def: SeriesDef): Promise<Sample | null> {
    return this.timeseries.latest(def.key);
  }

  /** TS.RANGE on a raw series. */
  range(def: SeriesDef, query: Omit<RangeQuery, 'key'>): Promise<Sample[]> {
    return this.timeseries.range({ ...query, key: def.key });
  }

  /**
   * TS.MADD in chunks (DUPLICATE_POLICY FIRST: re-sending is harmless). While a compaction of the
   * series is still to settle (a tier added over stored data), the newest sample is read before
   * and after, and the compactions settled (CompactionService.settleAfterAdd; if that fails, the
   * samples are stored all the same and the next add settles them, more coarsely).
   */
  async add(def: SeriesDef, samples: Sample[]): Promise<AddReport> {
    if (!this.compactions.hasUnsettled(def)) return this.timeseries.add(def.key, samples);
    const before = await this.timeseries.latest(def.key);
    const report = await this.timeseries.add(def.key, samples);
    try {
      await this.compactions.settleAfterAdd(def, before, await this.timeseries.latest(def.key), samples);
    } catch (err) {
      this.logger.warn(`${def.key}: compactions not settled yet: ${(err as Error).message}`);
    }
    return report;
  }

  /**
   * Stores the hourly history of a first backfill: one sample per hour (the candle's close),
   * all older than `fineFrom`, where the 1-minute samples start in the raw series. The whole
   * days (coarsest compaction buckets) before fineFrom's day go straight into the compactions,
   * as the rules would have computed them from those samples: the rules never see anything
   * that old, so no rule ever writes those buckets. The hours of fineFrom's own day go into the
   * raw series, so the rules compact that day whole, hours and minutes together.
   */
  async addHourly(def: SeriesDef, samples: Sample[], fineFrom: number): Promise<AddReport> {
    const split = this.compactions.firstRuleBucket(fineFrom);
    const direct = await this.compactions.addHistory(def, samples.filter((s) => s.timestamp < split));
    const raw = await this.add(def, samples.filter((s) => s.timestamp >= split && s.timestamp < fineFrom));
    return {
      stored: direct.stored + raw.stored,
      duplicates: direct.duplicates + raw.duplicates,
      rejected: direct.rejected + raw.rejected,
      errors: [...new Set([...direct.errors, ...raw.errors])].slice(0, 5),
    };
  }

  /** Marks a successful run of `source` (shared by every instance: readiness reads it). */
  async recordSuccess(source: SourceId, at: number): Promise<void> {
    await this.redis.set(this.keys.ingestLastSuccess(source), String(at));
  }

  /** Until when (epoch ms) the upstream of `source` asked not to be called (shared by every instance), or null. */
  async upstreamNotBefore(source: SourceId): Promise<number | null> {
    const raw = await this.redis.get(this.keys.ingestNotBefore(source));
    const n = raw === null ? NaN : Number(raw);
    return Number.isFinite(n) && n > Date.now() ? n : null;
  }

  /** Remembers that time; the key expires with it. The latest answer wins (it is the upstream's latest word). */
  async setUpstreamNotBefore(source: SourceId, until: number): Promise<void> {
    const ms = Math.ceil(until - Date.now());
    if (ms > 0) await this.redis.set(this.keys.ingestNotBefore(source), String(until), 'PX', ms);
  }

  /** A backfill of `source` to retry (shared: whichever instance runs the source next retries it), or null. */
  async pendingBackfill(source: SourceId): Promise<PendingBackfill | null> {
    const raw = await this.redis.get(this.keys.backfillPending(source));
    const m = raw === null ? null : /^(\d+)(?::(\d+):(\d+))?$/.exec(raw);
    // Written before retries were spaced out (the start alone): failed once, due now.
    return m ? { from: Number(m[1]), failures: Number(m[2] ?? 1), retryAt: Number(m[3] ?? 0) } : null;
  }

  /** Remembers a failed backfill; past `ttlMs` it would be out of the backfill's reach anyway. */
  async setPendingBackfill(source: SourceId, pending: PendingBackfill, ttlMs: number): Promise<void> {
    const value = `${pending.from}:${pending.failures}:${Math.ceil(pending.retryAt)}`;
    await this.redis.set(this.keys.backfillPending(source), value, 'PX', Math.max(1, ttlMs));
  }

  async clearPendingBackfill(source: SourceId): Promise<void> {
    await this.redis.del(this.keys.backfillPending(source));
  }

  /** The hourly history of `source` to retry (see addHourly; shared like pendingBackfill), or null. */
  async pendingHourlyBackfill(source: SourceId): Promise<PendingHourlyBackfill | null> {
    const raw = await this.redis.get(this.keys.backfillPendingHourly(source));
    const m = raw === null ? null : /^(\d+):(\d+)(?::(\d+):(\d+))?$/.exec(raw);
    return m ? { from: Number(m[1]), until: Number(m[2]), failures: Number(m[3] ?? 1), retryAt: Number(m[4] ?? 0) } : null;
  }

  async setPendingHourlyBackfill(source: SourceId, pending: PendingHourlyBackfill, ttlMs: number): Promise<void> {
    const value = `${pending.from}:${pending.until}:${pending.failures}:${Math.ceil(pending.retryAt)}`;
    await this.redis.set(this.keys.backfillPendingHourly(source), value, 'PX', Math.max(1, ttlMs));
  }

  async clearPendingHourlyBackfill(source: SourceId): Promise<void> {
    await this.redis.del(this.keys.backfillPendingHourly(source));
  }

  /** Epoch ms of the last successful run of `source` by any instance, or null. */
  async lastSuccess(source: SourceId): Promise<number | null> {
    const raw = await this.redis.get(this.keys.ingestLastSuccess(source));
    const n = raw === null ? NaN : Number(raw);
    return Number.isFinite(n) ? n : null;
  }
}
