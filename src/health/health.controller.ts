import { BeforeApplicationShutdown, Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckResult, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { SkipThrottle } from '../throttle/throttle.constants.js';
import { Env } from '../config/env.validation.js';
import { IngestService } from '../ingest/ingest.service.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisClient } from '../redis/redis.types.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';

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
  private shuttingDown = false;

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicator: HealthIndicatorService,
    private readonly timeseries: TimeseriesService,
    private readonly ingest: IngestService,
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    config: ConfigService<Env, true>,
  ) {
    this.maxIngestAgeMs = config.get('HEALTH_INGEST_MAX_AGE_MS', { infer: true });
    this.redisTimeoutMs = config.get('HEALTH_REDIS_TIMEOUT_MS', { infer: true });
  }

  @Get('live')
  @HealthCheck({ swaggerDocumentation: true })
  @ApiOperation({ summary: 'Liveness: the process serves HTTP (independent of Redis and the upstream)' })
  live(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck({ swaggerDocumentation: true })
  @ApiOperation({
    summary: 'Readiness: Redis answers PING, the time-series backend is known, the last successful ingest is recent enough',
  })
  async ready(): Promise<HealthCheckResult> {
    if (this.shuttingDown) throw new ServiceUnavailableException({ message: 'Not ready: shutting down', details: {} });
    try {
      return await this.health.check([() => this.checkRedis(), () => this.checkBackend(), () => this.checkIngest()]);
    } catch (err) {
      throw notReady(err);
    }
  }

  /** From SIGTERM on, load balancers are told to stop sending while in-flight work finishes. */
  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
  }

  private async checkRedis() {
    const check = this.indicator.check('redis');
    // Not connected: say so at once instead of waiting for a command that cannot be sent.
    if (this.redis.status !== 'ready') return check.down({ message: `not connected (${this.redis.status})` });
    return check
      .attempt(async () => {
        await this.redis.ping();
      })
      .withTimeout(this.redisTimeoutMs);
  }

  private checkBackend() {
    const check = this.indicator.check('timeseries');
    return this.timeseries.kindKnown ? check.up({ backend: this.timeseries.kind }) : check.down({ message: 'backend not probed yet' });
  }

  private async checkIngest() {
    const check = this.indicator.check('ingest');
    if (this.maxIngestAgeMs === 0) return check.up({ message: 'age check off (HEALTH_INGEST_MAX_AGE_MS=0)' });
    let last: number | null;
    try {
      last = (await this.ingest.lastSuccessShared()) ?? this.ingest.lastSuccess;
    } catch {
      last = this.ingest.lastSuccess; // Redis away: the redis check already reports it
    }
    if (last === null) return check.down({ message: 'no successful ingest yet' });
    const ageMs = Date.now() - last;
    const data = { lastSuccess: new Date(last).toISOString(), ageSeconds: Math.round(ageMs / 1000) };
    return ageMs <= this.maxIngestAgeMs ? check.up(data) : check.down({ ...data, message: `older than ${this.maxIngestAgeMs} ms` });
  }
}

/** Terminus' 503 body, in our error shape: which checks failed and why, under `details`. */
function notReady(err: unknown): unknown {
  if (!(err instanceof ServiceUnavailableException)) return err;
  const result = err.getResponse?.() as Partial<HealthCheckResult> | undefined;
  const failed = Object.keys(result?.error ?? {});
  return new ServiceUnavailableException({
    message: `Not ready: ${failed.join(', ') || 'unknown'}`,
    details: result?.details ?? {},
  });
}
