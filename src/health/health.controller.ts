import { BeforeApplicationShutdown, Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { HealthCheck, HealthCheckResult, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { SkipThrottle } from '../throttle/throttle.constants.js';
import { Env } from '../config/env.validation.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisClient } from '../redis/redis.types.js';
import { redisErrorSummary } from '../redis/redis-errors.js';
import { SeriesRepository } from '../series/series.repository.js';
import { SourceId } from '../sources/source.types.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';

const READY_EXAMPLE = {
  redis: { status: 'up' },
  timeseries: { status: 'up', backend: 'native' },
  ingest: {
    status: 'up',
    lastSuccess: '2026-12-02T17:12:00.000Z',
    ageSeconds: 12,
    sources: { coinbase: { lastSuccess: '2026-12-02T17:12:00.000Z', ageSeconds: 12, ok: true } },
  },
};

/** What @nestjs/terminus answers when every check is up (its own Swagger schema describes a database check and a failure shape we do not send). */
function healthSchema(example: Record<string, unknown>) {
  const checks = { type: 'object', additionalProperties: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['up'] } } }, example };
  return {
    type: 'object',
    required: ['status', 'info', 'error', 'details'],
    properties: { status: { type: 'string', enum: ['ok'] }, info: checks, error: { type: 'object', example: {} }, details: checks },
  };
}

/**
 * Kubernetes probes. Liveness says only that the process serves HTTP (a Redis outage must not
 * restart pods); readiness says whether this instance can answer with current data.
 */
@ApiTags('health')
@SkipThrottle()
@Controller('health')
export class HealthController implements BeforeApplicationShutdown {
  private readonly maxIngestAgeMs: number;
  private readonly redisTimeoutMs: number;
  /** Each source's allowed age: HEALTH_INGEST_MAX_AGE_MS; for a daily-only source at least 3 of its intervals. */
  private readonly maxAgeBySource: Map<SourceId, number>;
  private shuttingDown = false;

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicator: HealthIndicatorService,
    private readonly timeseries: TimeseriesService,
    private readonly series: SeriesRepository,
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    config: ConfigService<Env, true>,
  ) {
    this.maxIngestAgeMs = config.get('HEALTH_INGEST_MAX_AGE_MS', { infer: true });
    this.redisTimeoutMs = config.get('HEALTH_REDIS_TIMEOUT_MS', { infer: true });
    const dailyMs = config.get('INGEST_DAILY_INTERVAL_MS', { infer: true });
    this.maxAgeBySource = new Map();
    for (const def of series.catalog) {
      const allowed = def.cadence === 'tick' ? this.maxIngestAgeMs : Math.max(this.maxIngestAgeMs, 3 * dailyMs);
      this.maxAgeBySource.set(def.source, Math.min(this.maxAgeBySource.get(def.source) ?? Infinity, allowed));
    }
  }

  @Get('live')
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOkResponse({ description: 'Serving', schema: healthSchema({}) })
  @ApiOperation({ summary: 'Liveness: the process serves HTTP (independent of Redis and the upstream)' })
  live(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOkResponse({ description: 'Ready: every check up (the ingest check lists each source)', schema: healthSchema(READY_EXAMPLE) })
  @ApiServiceUnavailableResponse({
    type: ErrorResponseDto,
    description: 'Not ready: `message` names the failed checks (`Not ready: redis, ingest`, or `Not ready: shutting down`), `details` holds every check as above',
  })
  @ApiOperation({
    summary:
      'Readiness: Redis answers PING, the time-series backend is known, and at least one source ingested recently enough (each source is listed under ingest with its last success and age)',
  })
  async ready(): Promise<HealthCheckResult> {
    if (this.shuttingDown) throw new ServiceUnavailableException({ message: 'Not ready: shutting down', details: {} });
    try {
      return await this.health.check([() => this.checkRedis(), () => this.checkBackend(), () => this.checkIngest()]);
    } catch (err) {
      throw notReady(err);
    }
  }

  /** From SIGTERM on (the drain, then the shutdown), load balancers are told to stop sending while in-flight work finishes. */
  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
  }

  private async checkRedis() {
    const check = this.indicator.check('redis');
    // Not connected: say so at once instead of waiting for a command that cannot be sent.
    if (this.redis.status !== 'ready') return check.down({ message: `not connected (${this.redis.status})` });
    return check
      .attempt(async () => {
        await this.redis.ping().catch((err: unknown) => {
          throw new Error(redisErrorSummary(err));
        });
      })
      .withTimeout(this.redisTimeoutMs);
  }

  private async checkBackend() {
    const check = this.indicator.check('timeseries');
    // Not known yet (a degraded start): probe now, within the same deadline as the PING.
    if (!this.timeseries.kindKnown && this.redis.status === 'ready') await within(this.redisTimeoutMs, this.timeseries.probeKind().catch(() => undefined));
    return this.timeseries.kindKnown ? check.up({ backend: this.timeseries.kind }) : check.down({ message: 'backend not probed yet' });
  }

  /**
   * Ready while at least one source has ingested recently: one source failing never stops the
   * other from being served. Each source is listed with its last success (any instance) and age.
   */
  private async checkIngest() {
    const check = this.indicator.check('ingest');
    if (this.maxIngestAgeMs === 0) return check.up({ message: 'age check off (HEALTH_INGEST_MAX_AGE_MS=0)' });
    // One deadline for all the reads, like the PING's: during a Redis stall readiness answers
    // within HEALTH_REDIS_TIMEOUT_MS, not after REDIS_COMMAND_TIMEOUT_MS per source.
    const entries = [...this.maxAgeBySource];
    // A failed read is Redis away (the redis check says why): not known, which is no "never".
    const reads = Promise.all(entries.map(([source]) => this.series.lastSuccess(source).catch(() => undefined)));
    const read = await within(this.redisTimeoutMs, reads);
    if (read === undefined) return check.down({ message: `Redis did not answer within ${this.redisTimeoutMs} ms` });
    if (read.every((last) => last === undefined)) return check.down({ message: 'not known: Redis is unavailable' });
    const lasts = read.map((last) => last ?? null);
    const now = Date.now();
    const sources: Record<string, { lastSuccess: string | null; ageSeconds: number | null; ok: boolean }> = {};
    for (const [i, [source, maxAgeMs]] of entries.entries()) {
      const last = lasts[i];
      const ageMs = last === null ? null : now - last;
      sources[source] = {
        lastSuccess: last === null ? null : new Date(last).toISOString(),
        ageSeconds: ageMs === null ? null : Math.round(ageMs / 1000),
        ok: ageMs !== null && ageMs <= maxAgeMs,
      };
    }
    // The newest success of any source at the top (as before several sources), each one below.
    const newest = Object.values(sources).reduce<(typeof sources)[string] | null>(
      (best, s) => (s.ageSeconds !== null && (best?.ageSeconds ?? Infinity) > s.ageSeconds ? s : best),
      null,
    );
    const data = { lastSuccess: newest?.lastSuccess ?? null, ageSeconds: newest?.ageSeconds ?? null, sources };
    if (Object.values(sources).some((s) => s.ok)) return check.up(data);
    if (newest === null) return check.down({ message: 'no successful ingest yet', sources });
    const allowed = [...new Set(this.maxAgeBySource.values())].join(' / ');
    return check.down({ ...data, message: `older than ${allowed} ms` });
  }
}

/** `work`'s result, or undefined when it takes longer than `ms` (it is left to finish on its own). */
async function within<T>(ms: number, work: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Terminus' 503 body, in our error shape: which checks failed and why, under `details`. */
function notReady(err: unknown): unknown {
  if (!(err instanceof ServiceUnavailableException)) return err;
  const result = err.getResponse?.() as Partial<HealthCheckResult> | undefined;
  const failed = Object.keys(result?.error ?? {});
  // A check in flight when the shutdown began: Terminus' own shutdown hook made it fail, with
  // every indicator up (it was "Not ready: unknown").
  const reason = result?.status === 'shutting_down' ? 'shutting down' : failed.join(', ') || 'unknown';
  return new ServiceUnavailableException({
    message: `Not ready: ${reason}`,
    details: result?.details ?? {},
  });
}
