import type { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env.validation.js';
import type { RedisClient } from '../redis/redis.types.js';
import { MetricsService } from './metrics.service.js';

describe('MetricsService', () => {
  it('adds the fast path’s hits to cache_requests_total{result="hit"} once, next to counted ones', async () => {
    const metrics = new MetricsService({ on: () => undefined } as unknown as RedisClient, { get: () => false } as unknown as ConfigService<Env, true>);
    const hits = async () => Number(/^cache_requests_total\{result="hit"\} (\d+)$/m.exec(await metrics.render())?.[1]);
    metrics.cache.inc({ result: 'hit' });
    metrics.countFastHit();
    metrics.countFastHit();
    expect(await hits()).toBe(3);
    expect(await hits()).toBe(3); // read again: nothing counted twice
    metrics.countFastHit();
    expect(await hits()).toBe(4);
  });
});
