import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { NotificationsService } from '../notifications/notifications.service.js';
import { CompactionService } from '../history/compaction.service.js';
import { METRICS, Metric, RedisKeys } from '../redis/redis-keys.service.js';
import { SummaryService } from '../summary/summary.service.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { Sample } from '../timeseries/timeseries.types.js';
import { IngestReportDto } from './dto/ingest-report.dto.js';
import { IngestOutcome, MetricsService } from '../metrics/metrics.service.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { isRedisUnavailableError, RedisNotConnectedError } from '../redis/redis-errors.js';
import { RedisClient } from '../redis/redis.types.js';
import { parsePayload, PayloadError, SentimentRecord } from './senticrypt-record.js';
import { PermanentUpstreamError, SentimentSourceService, TransientUpstreamError } from './sentiment-source.service.js';

export interface IngestOptions {
  /** Re-send everything the upstream serves, not only what is newer than the stored data. */
  full?: boolean;
}

/**
 * Pulls the feed, validates it and stores price and sentiment with TS.MADD. Runs never overlap
 * in one process: a call during a run waits for that run and gets its report.
 */
@Injectable()
export class IngestService implements OnModuleInit {
  private readonly logger = new Logger(IngestService.name);
  private readonly retentionMs: number;
  private running: Promise<IngestReportDto> | null = null;
  private lastSuccessAt: number | null = null;
  private readonly degradedStart: boolean;

  constructor(
    private readonly source: SentimentSourceService,
    private readonly timeseries: TimeseriesService,
    private readonly summary: SummaryService,
    private readonly keys: RedisKeys,
    private readonly notifications: NotificationsService,
    private readonly metrics: MetricsService,
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly compactions: CompactionService,
    config: ConfigService<Env, true>,
  ) {
    this.retentionMs = config.get('TIMESERIES_RETENTION_MS', { infer: true });
    this.degradedStart = config.get('REDIS_STARTUP_MODE', { infer: true }) === 'degraded';
  }

  /**
   * TS.CREATE both series (DUPLICATE_POLICY FIRST, labels, retention), then their compaction
   * rules, before anything is served or ingested (rules only see samples added after them).
   * Started degraded (no Redis yet), the first ingest run does it instead.
   */
  async onModuleInit(): Promise<void> {
    try {
      await this.ensureStorage();
    } catch (err) {
      if (!this.degradedStart || !isRedisUnavailableError(err)) throw err;
      this.logger.warn(`series not created yet (Redis unavailable); the first ingest run will: ${(err as Error).message}`);
    }
  }

  private async ensureStorage(): Promise<void> {
    for (const metric of METRICS) {
      await this.timeseries.ensureSeries(this.keys.series(metric), {
        retentionMs: this.retentionMs,
        labels: { metric, source: 'senticrypt', app: 'is-bitcoin-lit' },
      });
    }
    await this.compactions.ensureAll();
  }

  /** Epoch ms of the last successful run of ANY instance (stored in Redis), or null. */
  async lastSuccessShared(): Promise<number | null> {
    const raw = await this.redis.get(this.keys.ingestLastSuccess());
    const n = raw === null ? NaN : Number(raw);
    return Number.isFinite(n) ? n : null;
  }

  /** Epoch ms of the last run that completed, or null. */
  get lastSuccess(): number | null {
    return this.lastSuccessAt;
  }

  /** The run in progress, if any (shutdown waits for it). */
  get inFlight(): Promise<IngestReportDto> | null {
    return this.running;
  }

  async run(options: IngestOptions = {}): Promise<IngestReportDto> {
    // A plain run joins the one in progress; a full run waits for it and then runs itself.
    if (this.running && !options.full) return this.running;
    while (this.running) await this.running.catch(() => undefined);
    this.running = this.execute(options).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async execute(options: IngestOptions): Promise<IngestReportDto> {
    const started = Date.now();
    try {
      // No point calling the upstream for data we cannot store; the next run catches up.
      if (this.redis.status !== 'ready') throw new RedisNotConnectedError(this.redis.status);
      // Fetch and validate first: a bad upstream fails the run before anything is written.
      const { payload, attempts } = await this.source.fetch();
      const latestStored = await this.latestCommonTimestamp();
      const parsed = parsePayload(payload, options.full ? null : latestStored);
      // No data: the first run, or Redis lost the series (restart without persistence, failover,
      // FLUSHALL). Re-create them and their rules, or every sample would be rejected until restart.
      if (latestStored === null) await this.ensureStorage();
      const fresh = parsed.records;
      const [price, sentiment] = await Promise.all([
        this.timeseries.add(this.keys.series('price'), samplesOf(fresh, 'price')),
        this.timeseries.add(this.keys.series('sentiment'), samplesOf(fresh, 'sentiment')),
      ]);
      const newest = fresh.reduce((max, r) => Math.max(max, r.timestamp), latestStored ?? -Infinity);
      const report: IngestReportDto = {
        startedAt: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        attempts,
        fetched: parsed.records.length + parsed.skipped + parsed.invalid,
        invalid: parsed.invalid,
        invalidReasons: parsed.invalidReasons,
        skipped: parsed.skipped,
        stored: price.stored + sentiment.stored,
        duplicates: price.duplicates + sentiment.duplicates,
        rejected: price.rejected + sentiment.rejected,
        series: {
          price: { stored: price.stored, duplicates: price.duplicates, rejected: price.rejected },
          sentiment: { stored: sentiment.stored, duplicates: sentiment.duplicates, rejected: sentiment.rejected },
        },
        latestSampleTime: Number.isFinite(newest) ? new Date(newest).toISOString() : null,
      };
      this.lastSuccessAt = Date.now();
      await this.redis.set(this.keys.ingestLastSuccess(), String(this.lastSuccessAt));
      this.countSuccess(report);
      this.logger.log(
        `ingest ok: fetched=${report.fetched} invalid=${report.invalid} skipped=${report.skipped} stored=${report.stored} duplicates=${report.duplicates} rejected=${report.rejected} in ${report.durationMs} ms`,
      );
      if (parsed.invalid) this.logger.warn(`skipped ${parsed.invalid} invalid record(s): ${parsed.invalidReasons.join('; ')}`);
      for (const err of [...price.errors, ...sentiment.errors]) this.logger.warn(`samples rejected by Redis: ${err}`);
      const summary = await this.summary.refreshCache();
      // Only runs that changed the data are news; publishing never throws.
      if (report.stored > 0) await this.notifications.publishIngest(report, summary);
      return report;
    } catch (err) {
      const outcome = outcomeOf(err);
      this.metrics.ingestRuns.inc({ outcome });
      this.logger.error(`ingest failed (${outcome}) after ${Date.now() - started} ms: ${(err as Error).message}`);
      throw err;
    }
  }

  private countSuccess(report: IngestReportDto): void {
    this.metrics.ingestRuns.inc({ outcome: 'success' });
    this.metrics.lastIngestSuccess.set(Math.floor((this.lastSuccessAt ?? 0) / 1000));
    this.metrics.invalidRecords.inc(report.invalid);
    for (const metric of METRICS) {
      const c = report.series[metric];
      this.metrics.samples.inc({ series: metric, outcome: 'stored' }, c.stored);
      this.metrics.samples.inc({ series: metric, outcome: 'duplicate' }, c.duplicates);
      this.metrics.samples.inc({ series: metric, outcome: 'rejected' }, c.rejected);
    }
  }

  /**
   * Newest timestamp present in BOTH series: if a run stored one series and not the other,
   * the next run re-sends from the older one (harmless under DUPLICATE_POLICY FIRST).
   */
  private async latestCommonTimestamp(): Promise<number | null> {
    const latest = await Promise.all(METRICS.map((m) => this.timeseries.latest(this.keys.series(m))));
    if (latest.some((s) => s === null)) return null;
    return Math.min(...latest.map((s) => (s as Sample).timestamp));
  }
}

function outcomeOf(err: unknown): IngestOutcome {
  if (err instanceof TransientUpstreamError || err instanceof PermanentUpstreamError) return 'upstream_error';
  if (err instanceof PayloadError) return 'payload_error';
  if (isRedisUnavailableError(err)) return 'redis_error';
  return 'error';
}

function samplesOf(records: SentimentRecord[], metric: Metric): Sample[] {
  return records.map((r) => ({ timestamp: r.timestamp, value: metric === 'price' ? r.price : r.sentiment }));
}
