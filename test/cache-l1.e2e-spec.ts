import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { AddressInfo } from 'node:net';
import { CacheService } from '../src/cache/cache.service.js';
import { API_SECURITY_HEADERS } from '../src/common/security-headers.js';
import { SummaryService } from '../src/summary/summary.service.js';
import { bootApp, startTestApp, stopTestApp, postRefresh } from './support/app.js';
import { waitFor } from './support/wait.js';
import { uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

const fixture = loadFixture().sort((a, b) => (a.timestamp as number) - (b.timestamp as number));

/** Listens on a free loopback port (the fast path sits in front of Fastify: app.inject skips it). */
async function listen(app: NestFastifyApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  return `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
}

/** The samples of /metrics, by series name with its labels. */
async function scrape(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => [line.slice(0, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1))]),
  );
}

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
    // Data and a cached summary for every test, also one run alone.
    expect((await postRefresh(app)).statusCode).toBe(200);
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('serves the Redis entry, then repeats it from memory over HTTP with the same bytes, in front of Fastify and Nest', async () => {
    expect((await postRefresh(app)).statusCode).toBe(200);
    const base = await listen(app);
    const first = await fetch(`${base}/is-bitcoin-lit`);
    const firstBody = await first.text();
    expect(first.headers.get('x-cache')).toBe('HIT');
    expect(JSON.parse(firstBody)).toEqual(await inRedis());
    const before = await scrape(base);

    // The interceptor reads through CacheService.get; the fast path peeks before Fastify.
    const cache = app.get(CacheService);
    const viaNest = jest.spyOn(cache, 'get');
    const viaFastPath = jest.spyOn(cache, 'peekJson');
    try {
      const again = await fetch(`${base}/is-bitcoin-lit`, { headers: { 'x-request-id': 'trace-fast-1' } });
      expect(again.status).toBe(200);
      expect(await again.text()).toBe(firstBody);
      expect(Object.fromEntries(again.headers)).toMatchObject({
        'x-cache': 'HIT',
        age: expect.stringMatching(/^\d+$/),
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(firstBody)),
        'x-request-id': 'trace-fast-1',
        ...API_SECURITY_HEADERS,
      });
      const own = await fetch(`${base}/is-bitcoin-lit`);
      await own.text();
      expect(own.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      expect(viaNest).not.toHaveBeenCalled();
      expect(viaFastPath).toHaveBeenCalledWith(cacheKey);
    } finally {
      viaNest.mockRestore();
      viaFastPath.mockRestore();
    }
    // Counted like any other request: two cache hits, two GET 200s of the route.
    const after = await scrape(base);
    const hits = 'cache_requests_total{result="hit"}';
    const requests = 'http_request_duration_seconds_count{method="GET",route="/is-bitcoin-lit",status="200"}';
    expect(after[hits] - before[hits]).toBe(2);
    expect(after[requests] - before[requests]).toBe(2);
  });

  it('leaves cross-origin requests to Fastify, which adds the CORS headers (still a hit from memory); its own answers vary by Origin too', async () => {
    const cors = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url, CACHE_L1_TTL_MS: '60000', CORS_ORIGINS: 'https://dash.example' });
    try {
      expect((await postRefresh(cors)).statusCode).toBe(200);
      const base = await listen(cors);
      const learned = await fetch(`${base}/is-bitcoin-lit`); // through Nest, then learned by the fast path
      await learned.text();
      const viaNest = jest.spyOn(cors.get(CacheService), 'get');
      // Without Origin: from the fast path, and varying by Origin as Fastify's answers do.
      const fast = await fetch(`${base}/is-bitcoin-lit`);
      await fast.text();
      expect(viaNest).not.toHaveBeenCalled();
      expect([learned.headers.get('vary'), fast.headers.get('vary')]).toEqual(['Origin', 'Origin']);
      const res = await fetch(`${base}/is-bitcoin-lit`, { headers: { origin: 'https://dash.example' } });
      await res.text();
      expect(res.headers.get('x-cache')).toBe('HIT');
      expect(res.headers.get('access-control-allow-origin')).toBe('https://dash.example');
      expect(res.headers.get('vary')).toBe('Origin');
      expect(viaNest).toHaveBeenCalled();
    } finally {
      await cors.close();
    }
  });

  it('answers HEAD from the cache as well, without computing the summary', async () => {
    const compute = jest.spyOn(app.get(SummaryService), 'compute');
    try {
      const head = await app.inject({ method: 'HEAD', url: '/is-bitcoin-lit' });
      expect(head.statusCode).toBe(200);
      expect(head.headers['x-cache']).toBe('HIT');
      expect(head.headers['content-length']).toBe(String(Buffer.byteLength((await get()).body)));
      expect(head.body).toBe('');
      expect(compute).not.toHaveBeenCalled();
    } finally {
      compute.mockRestore();
    }
  });

  it('keeps serving its copy when Redis is changed behind its back (up to CACHE_L1_TTL_MS), but shows its own ingest at once', async () => {
    const before = (await get()).body;
    await redis.set(cacheKey, JSON.stringify({ value: { changed: true }, storedAt: Date.now() }), 'EX', 120);
    expect((await get()).body).toBe(before);

    upstream.mode = { kind: 'json', body: fixture };
    expect((await postRefresh(app)).statusCode).toBe(200);
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
    const seen = await waitFor('the new Redis entry', async () => {
      const res = await get();
      return res.json().sentiment_direction === 'flat' ? res : null;
    });
    expect(seen.json()).toEqual(other);
    expect(seen.headers['x-cache']).toBe('HIT');
  });

  it('never puts an older summary over a newer one (two instances refreshing at once: the older one records first, caches last)', async () => {
    const summaries = app.get(SummaryService);
    const cache = app.get(CacheService);
    await redis.del(cacheKey);
    const current = (await summaries.refreshCache())!;
    expect(await inRedis()).toEqual(current);
    const later = Date.parse(current.as_of) + 3_600_000;
    // What a refresh on another instance, as of an hour later, has just cached.
    expect(await cache.setUnlessNewer(cacheKey, { ...current, as_of: new Date(later).toISOString() }, 60, later)).toBe(true);
    expect(await summaries.refreshCache()).toBeNull();
    expect((await inRedis()).as_of).toBe(new Date(later).toISOString());
    // An older order is refused by the script itself; a newer one replaces.
    expect(await cache.setUnlessNewer(cacheKey, current, 60, later - 1)).toBe(false);
    expect(await cache.setUnlessNewer(cacheKey, current, 60, later + 1)).toBe(true);
    expect((await inRedis()).as_of).toBe(current.as_of);
    await redis.del(cacheKey);
    expect(await summaries.refreshCache()).not.toBeNull();
  });
});
