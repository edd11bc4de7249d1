import { Logger, Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisClient } from '../redis/redis.types.js';
import { detectBackend, UnknownTimeseriesModuleError } from './backend-probe.js';
import { RawReadGate } from './raw-read-gate.service.js';
import { backendOf, DeferredTimeseriesBackend } from './deferred.backend.js';
import { TIMESERIES_BACKEND } from './timeseries.constants.js';
import { TimeseriesService } from './timeseries.service.js';
import { TimeseriesBackend } from './timeseries.types.js';

/** Picks the backend once at startup (config, or a probe of the server) and logs the choice. */
async function createBackend(redis: RedisClient, config: ConfigService<Env, true>): Promise<TimeseriesBackend> {
  const logger = new Logger('Timeseries');
  const wanted = config.get('TIMESERIES_BACKEND', { infer: true });
  if (wanted !== 'auto' && redis.status !== 'ready') {
    logger.log(`Time-series backend: ${wanted} (configured; Redis not connected yet)`);
    return backendOf(wanted, redis);
  }
  if (redis.status !== 'ready') {
    logger.warn('Time-series backend: unknown until Redis answers (auto; started degraded)');
    const deferred = new DeferredTimeseriesBackend(redis, (kind) => logger.log(`Time-series backend: ${kind} (detected)`));
    // Probed as soon as Redis is there; a failed probe is retried by the next call or readiness.
    redis.once('ready', () => void deferred.probe().catch(() => undefined));
    return deferred;
  }
  // A forced portable backend needs no module, so no probe (on a cluster the probe asks every master).
  // Configured native on a server whose TS.* is not RedisTimeSeries' (the probe cannot tell): as asked.
  const detected =
    wanted === 'portable'
      ? 'portable'
      : await detectBackend(redis).catch((err: unknown) => {
          if (wanted === 'native' && err instanceof UnknownTimeseriesModuleError) return 'native' as const;
          throw err;
        });
  if (wanted === 'native' && detected !== 'native') {
    throw new Error('TIMESERIES_BACKEND=native but this Redis has no TS.* commands (use Redis 8 / Redis Stack, or TIMESERIES_BACKEND=portable)');
  }
  const kind = wanted === 'auto' ? detected : wanted;
  logger.log(`Time-series backend: ${kind} (${wanted === 'auto' ? 'detected' : 'configured'})`);
  return backendOf(kind, redis);
}

@Module({
  providers: [
    { provide: TIMESERIES_BACKEND, inject: [REDIS_CLIENT, ConfigService], useFactory: createBackend },
    TimeseriesService,
    RawReadGate,
  ],
  exports: [TimeseriesService, RawReadGate],
})
export class TimeseriesModule {}
