import type { INestApplicationContext } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import type { RedisClient } from '../../src/redis/redis.types.js';
import { detectBackend } from '../../src/timeseries/backend-probe.js';
import { backendOf } from '../../src/timeseries/deferred.backend.js';
import { TimeseriesService } from '../../src/timeseries/timeseries.service.js';
import type { Sample } from '../../src/timeseries/timeseries.types.js';

/**
 * The one way e2e specs read what a series holds: through the project's own time-series layer,
 * so the same assertion holds on the native backend (RedisTimeSeries: the key is a TSDB-TYPE)
 * and on the portable one (a sorted set plus a metadata hash). Never ZCARD/ZRANGE/TYPE a series
 * key in a spec that runs against REDIS_URL: that only works on the portable backend. Tests of
 * the portable layout itself, or on a redis-server they started, may look at the keys.
 *
 * `from` is the app under test (its TimeseriesService) or a Redis client (the backend its server
 * offers is probed, as the app does with TIMESERIES_BACKEND=auto).
 */
type SeriesReader = INestApplicationContext | RedisClient;

async function timeseriesOf(from: SeriesReader): Promise<Pick<TimeseriesService, 'range' | 'info'>> {
  if (!(from instanceof Redis || from instanceof Cluster)) return from.get(TimeseriesService);
  return backendOf(await detectBackend(from), from);
}

/** Every sample of `key` (none when it does not exist), oldest first. */
export async function storedSamples(from: SeriesReader, key: string): Promise<Sample[]> {
  return (await timeseriesOf(from)).range({ key, from: 0, to: Number.MAX_SAFE_INTEGER });
}

/** How many samples `key` holds (TS.INFO totalSamples; 0 when it does not exist). */
export async function sampleCount(from: SeriesReader, key: string): Promise<number> {
  return (await (await timeseriesOf(from)).info(key))?.totalSamples ?? 0;
}
