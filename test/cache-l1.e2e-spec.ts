import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { CacheService } from '../src/cache/cache.service.js';
import { SummaryService } from '../src/summary/summary.service.js';
import { AUTH, bootApp, startTestApp, stopTestApp } from './support/app.js';
import { waitUntil } from './support/instances.js';
import { uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

const fixture = loadFixture().sort((a, b) => (a.timestamp as number) - (b.timestamp as number));

describe('in-process cache copy (L1) and fast path (e2e, real Redis)', () => {
  const prefix = uniquePrefix('l1');
  const cacheKey = `${prefix}:cache`;
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  const get = (url = '/is-bitcoin-lit') => app.inject({ method: 'GET', url });
  const inRedis = async () => JSON.parse((await redis.get(cacheKey)) as string).value;

  beforeAll(async () => {
    // A long L1 TTL, so "still the old copy" below does not depend on timing.
    ({ redis, upstream, app } = await startTestApp(prefix, fixture.slice(0, 1500), { CACHE_L1_TTL_MS: '60000' }));
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('serves the Redis entry, then repeats it from memory with the same bytes and X-Cache: HIT, without entering Nest', async () => {
    expect((await app.inject({ method: 'POST', url: '/refresh', headers: AUTH })).statusCode).toBe(200);
    const first = await get();
    expect(first.headers['x-cache']).toBe('HIT');
    expect(first.json()).toEqual(await inRedis());

    // The interceptor reads through CacheService.get; the fast path peeks before Nest.
    const cache = app.get(CacheService);
    const viaNest = jest.spyOn(cache, 'get');
    const viaFastPath = jest.spyOn(cache, 'peekJson');
    try {
      const again = await get();
      expect(again.statusCode).toBe(200);
      expect(again.headers['x-cache']).toBe('HIT');
      expect(again.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(again.body).toBe(first.body);
      expect(viaNest).not.toHaveBeenCalled();
      expect(viaFastPath).toHaveBeenCalledWith(cacheKey);
    } finally {
      viaNest.mockRestore();
      viaFastPath.mockRestore();
    }
  });

  it('keeps serving its copy when Redis is changed behind its back (up to CACHE_L1_TTL_MS), but shows its own ingest at once', async () => {
    const before = (await get()).body;
    await redis.set(cacheKey, JSON.stringify({ value: { changed: true }, storedAt: Date.now() }), 'EX', 120);
    expect((await get()).body).toBe(before);

    upstream.mode = { kind: 'json', body: fixture };
    expect((await app.inject({ method: 'POST', url: '/refresh', headers: AUTH })).statusCode).toBe(200);
    const after = await get();
    expect(after.headers['x-cache']).toBe('HIT');
    expect(after.json()).toEqual(await inRedis());
    expect(after.json()).toEqual(await app.get(SummaryService).compute());
    expect(after.body).not.toBe(before);
  });

  it('does not remember misses: a computed miss is stored in Redis and then served from memory', async () => {
    await app.close();
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url, CACHE_L1_TTL_MS: '60000' });
    await redis.del(cacheKey);
    const miss = await get();
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(await inRedis()).toEqual(miss.json());
    const hit = await get();
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.body).toBe(miss.body);
  });

  it('sees a change made in Redis by another instance once its copy is older than CACHE_L1_TTL_MS', async () => {
    await app.close();
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url, CACHE_L1_TTL_MS: '200' });
    expect((await get()).headers['x-cache']).toBe('HIT');
    const other = { hourly_average_of_averages: [], sentiment_direction: 'flat', price_direction: 'flat' };
    await redis.set(cacheKey, JSON.stringify({ value: other, storedAt: Date.now() }), 'EX', 120);
    const seen = await waitUntil('the new Redis entry', async () => {
      const res = await get();
      return res.json().sentiment_direction === 'flat' ? res : null;
    });
    expect(seen.json()).toEqual(other);
    expect(seen.headers['x-cache']).toBe('HIT');
  });
});
