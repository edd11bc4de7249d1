import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { HealthController } from '../src/health/health.controller.js';
import { RedisKeys } from '../src/redis/redis-keys.service.js';
import { SeriesRepository } from '../src/series/series.repository.js';
import { metaKey } from '../src/timeseries/portable.backend.js';
import { TimeseriesService } from '../src/timeseries/timeseries.service.js';
import { AUTH, bootApp, postRefresh, startTestApp, stopTestApp, TEST_REFRESH_TOKEN, type TestApp } from './support/app.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { sampleCount } from './support/series.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { waitFor } from './support/wait.js';

// Waits on real processes and timers (reconnects, scheduled runs): more than Jest's default 5 s.
jest.setTimeout(30_000);

const fixture = loadFixture();

describe('operations: health, metrics, request ids, upstream faults (e2e, real Redis)', () => {
  const prefix = uniquePrefix('ops');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, fixture, {
      // Short, for the hang tests, yet far above a loaded machine's fetch of the fixture (a
      // success retried on a timeout would change the counts asserted below).
      SENTIMENT_API_TIMEOUT_MS: '1000',
      HEALTH_INGEST_MAX_AGE_MS: '60000',
      LOG_LEVEL: 'fatal',
    }));
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  // A series born at its first increment hides that increment from rate() and increase(): an
  // alert on the first webhook given up, or the first failure of a source, never fired.
  it('has every counter\'s known series at 0 from the start, and each source\'s last success (0: none stored)', async () => {
    // Read from Redis once the app is up.
    const seeded = 'source_last_success_timestamp_seconds{source="senticrypt-v1"} 0';
    await waitFor('the last-success gauge', async () => (await get('/metrics')).payload.split('\n').includes(seeded));
    const text = (await get('/metrics')).payload;
    for (const line of [
      'ingest_runs_total{outcome="upstream_error"} 0',
      'ingest_runs_total{outcome="redis_error"} 0',
      'source_runs_total{source="senticrypt-v1",outcome="payload_error"} 0',
      'ingest_samples_total{source="senticrypt-v1",series="price",outcome="stored"} 0',
      'ingest_samples_total{source="senticrypt-v1",series="sentiment",outcome="rejected"} 0',
      'cache_requests_total{result="stale"} 0',
      'redis_errors_total{kind="command"} 0',
      'notification_clients_refused_total{transport="ws",reason="address"} 0',
      'notification_clients_refused_total{transport="sse",reason="closing"} 0',
      'notification_clients_dropped_total{transport="sse"} 0',
    ]) {
      expect([line, text.split('\n').includes(line)]).toEqual([line, true]);
    }
  });

  it('is live but not ready before the first successful ingest, ready after it', async () => {
    expect((await get('/health/live')).json()).toEqual({ status: 'ok', info: {}, error: {}, details: {} });
    const before = await get('/health/ready');
    expect(before.statusCode).toBe(503);
    expect(before.json()).toMatchObject({ message: 'Not ready: ingest', details: { ingest: { status: 'down', message: 'no successful ingest yet' } } });
    const refreshed = Date.now();
    expect((await postRefresh(app)).statusCode).toBe(200);
    const after = await get('/health/ready');
    expect(after.statusCode).toBe(200);
    expect(after.json().info).toMatchObject({ redis: { status: 'up' }, timeseries: { status: 'up' }, ingest: { status: 'up' } });
    // Rounded seconds since that ingest: no more than the refresh and this read took.
    expect(after.json().info.ingest.ageSeconds).toBeLessThanOrEqual(Math.round((Date.now() - refreshed) / 1000));
    // Shared through Redis, so replicas without the schedule are ready too.
    expect(Number(await redis.get(`${prefix}:ingest:last-success`))).toBeGreaterThan(Date.now() - 60_000);
  });

  it('starts each source\'s last-success gauge from the time stored in Redis, so a restart does not hide a stale source', async () => {
    const stored = await app.get(SeriesRepository).lastSuccess('senticrypt-v1');
    expect(stored).toEqual(expect.any(Number));
    const replica = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url, LOG_LEVEL: 'fatal' });
    try {
      const line = `source_last_success_timestamp_seconds{source="senticrypt-v1"} ${Math.floor((stored as number) / 1000)}`;
      await waitFor('the gauge read from Redis', async () => (await replica.inject({ method: 'GET', url: '/metrics' })).payload.split('\n').includes(line));
    } finally {
      await replica.close();
    }
  });

  it('keeps a failed backfill to retry in Redis with its failure count and due time, and reads one kept before those were', async () => {
    const series = app.get(SeriesRepository);
    const keys = app.get(RedisKeys);
    await series.setPendingBackfill('coinbase', { from: 1_000, failures: 3, retryAt: 1_999.5 }, 60_000); // kept whole: read back, not lost
    await series.setPendingHourlyBackfill('coinbase', { from: 1_000, until: 5_000, failures: 2, retryAt: 3_000 }, 60_000);
    expect(await series.pendingBackfill('coinbase')).toEqual({ from: 1_000, failures: 3, retryAt: 2_000 });
    expect(await series.pendingHourlyBackfill('coinbase')).toEqual({ from: 1_000, until: 5_000, failures: 2, retryAt: 3_000 });
    expect(await redis.pttl(keys.backfillPending('coinbase'))).toBeGreaterThan(50_000);
    // Written by an earlier version, the start (and end) alone: failed once, due now.
    await redis.set(keys.backfillPending('coinbase'), '1000', 'PX', 60_000);
    await redis.set(keys.backfillPendingHourly('coinbase'), '1000:5000', 'PX', 60_000);
    expect(await series.pendingBackfill('coinbase')).toEqual({ from: 1_000, failures: 1, retryAt: 0 });
    expect(await series.pendingHourlyBackfill('coinbase')).toEqual({ from: 1_000, until: 5_000, failures: 1, retryAt: 0 });
    await series.clearPendingBackfill('coinbase');
    await series.clearPendingHourlyBackfill('coinbase');
    expect([await series.pendingBackfill('coinbase'), await series.pendingHourlyBackfill('coinbase')]).toEqual([null, null]);
  });

  it('returns the request id in a header, reusing a well-formed incoming one', async () => {
    const own = await get('/is-bitcoin-lit', { 'x-request-id': 'trace-abc_123' });
    expect(own.headers['x-request-id']).toBe('trace-abc_123');
    const bad = await get('/nope', { 'x-request-id': 'has spaces and "quotes"' });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(bad.json().requestId).toBe(bad.headers['x-request-id']);
  });

  it('sends the API security headers on data and helmet\'s full set on HTML pages', async () => {
    for (const url of ['/is-bitcoin-lit', '/nope', '/metrics', '/docs-json']) {
      const res = await get(url);
      expect({ url, ...res.headers }).toMatchObject({
        url,
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'content-security-policy': "default-src 'none';frame-ancestors 'none'",
      });
      expect(res.headers['referrer-policy']).toBeUndefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['access-control-allow-origin']).toBeUndefined(); // CORS off by default
    }
    for (const url of ['/', '/docs']) {
      const res = await get(url);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect({ url, ...res.headers }).toMatchObject({
        url,
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'SAMEORIGIN',
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'referrer-policy': 'no-referrer',
        'cross-origin-opener-policy': 'same-origin',
        'content-security-policy': expect.stringContaining("script-src 'self' 'unsafe-inline'"),
      });
    }
  });

  it('rejects unknown or malformed input with a 400 naming the field', async () => {
    const unknown = await get('/is-bitcoin-lit?hours=3');
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ statusCode: 400, message: ['property hours should not exist'] });
    const bogus = await app.inject({ method: 'POST', url: '/refresh?bogus=1', headers: AUTH });
    expect(bogus.json()).toMatchObject({ statusCode: 400, message: ['property bogus should not exist'] });
    const stray = await app.inject({ method: 'POST', url: '/refresh', headers: AUTH, payload: { full: true } });
    expect(stray.json()).toMatchObject({ statusCode: 400, message: ['property full should not exist'] });
    const badJson = await app.inject({ method: 'POST', url: '/refresh', headers: { ...AUTH, 'content-type': 'application/json' }, payload: '{"full":' });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json()).toMatchObject({ statusCode: 400, error: 'Bad Request', requestId: expect.any(String) });
    const poisoned = await app.inject({ method: 'POST', url: '/refresh', headers: { ...AUTH, 'content-type': 'application/json' }, payload: '{"__proto__":{"full":true}}' });
    expect(poisoned.json()).toMatchObject({ statusCode: 400, error: 'Bad Request' });
    // An empty body with the JSON content type (generated clients send the header on every POST)
    // is no body, as the API document says; Fastify's own parser answered it 400.
    const empty = await app.inject({ method: 'POST', url: '/refresh', headers: { ...AUTH, 'content-type': 'application/json; charset=utf-8' }, payload: '' });
    expect([empty.statusCode, empty.json().sources]).toEqual([200, expect.any(Array)]);
  });

  it('serves the cached summary with its Age', async () => {
    await postRefresh(app); // primes the cache
    const res = await get('/is-bitcoin-lit');
    expect(res.headers['x-cache']).toBe('HIT');
    expect(res.headers.age).toMatch(/^\d+$/);
  });

  describe('upstream faults', () => {
    let before: string;
    let stored: number;
    const count = () => sampleCount(app, `${prefix}:price:mean:30s`);
    beforeAll(async () => {
      // The fixture is stored and the summary cached, whichever tests ran before (or none).
      upstream.mode = { kind: 'json', body: fixture };
      expect((await postRefresh(app)).statusCode).toBe(200);
      before = (await get('/is-bitcoin-lit')).body;
      stored = await count();
    });
    afterEach(() => {
      upstream.mode = { kind: 'json', body: fixture };
    });

    it('a hanging upstream times out per call, is retried with backoff, then 502 with what happened', async () => {
      upstream.mode = { kind: 'hang' };
      upstream.calls = 0;
      const res = await postRefresh(app);
      expect(res.statusCode).toBe(502);
      expect(res.json().message).toBe('Ingest failed: upstream timed out (attempt 3 of 3)');
      expect(upstream.calls).toBe(3);
      expect(await count()).toBe(stored);
      expect((await get('/is-bitcoin-lit')).body).toBe(before);
    });

    it('a JSON object is a permanent failure: one call, nothing stored changed', async () => {
      upstream.mode = { kind: 'json', body: { message: 'rate limited' } };
      upstream.calls = 0;
      const res = await postRefresh(app);
      expect(res.json().message).toBe('Ingest failed: upstream payload is not a JSON array (got object)');
      expect(upstream.calls).toBe(1);
      expect(await count()).toBe(stored);
    });

    it('an array with some bad records stores the good ones and reports the rest', async () => {
      const next = { ...fixture[0], timestamp: 1625700000.5, btc_price: '34000.5', mean: 0.1 };
      upstream.mode = { kind: 'json', body: [...fixture, next, { ...next, timestamp: 1625700030, btc_price: 'n/a' }, 'junk'] };
      const res = await postRefresh(app);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        invalid: 2,
        invalidReasons: ['#2475: btc_price is not a number', '#2476: record is not an object'],
        stored: 2,
        skipped: 2474,
      });
      expect(await count()).toBe(stored + 1);

      // The next poll repeats the feed: a bad record now behind the stored data is not reported
      // (nor counted in ingest_invalid_records_total) again; the stored ones are just skipped.
      upstream.mode = { kind: 'json', body: [...fixture, next, { ...fixture[7], btc_price: 'n/a' }, 'junk'] };
      const again = await postRefresh(app);
      expect(again.json()).toMatchObject({ fetched: 2477, invalid: 1, invalidReasons: ['#2476: record is not an object'], stored: 0, skipped: 2476 });
    });

    it('metrics count every outcome', async () => {
      // Counters are per app and other tests add to them: this test checks what its own runs add.
      const scrape = async () => {
        const res = await get('/metrics');
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/plain/);
        return res.body;
      };
      const valueIn = (m: string, re: RegExp) => Number(re.exec(m)?.[1] ?? 0);
      const counters = {
        success: /^ingest_runs_total\{outcome="success"\} (\d+)$/m,
        upstreamError: /^ingest_runs_total\{outcome="upstream_error"\} (\d+)$/m,
        payloadError: /^ingest_runs_total\{outcome="payload_error"\} (\d+)$/m,
        priceStored: /^ingest_samples_total\{source="senticrypt-v1",series="price",outcome="stored"\} (\d+)$/m,
        invalid: /^ingest_invalid_records_total\{source="senticrypt-v1"\} (\d+)$/m,
        transient: /^upstream_request_duration_seconds_count\{source="senticrypt-v1",outcome="transient_error"\} (\d+)$/m,
        refresh502: /^http_request_duration_seconds_count\{method="POST",route="\/refresh",status="502"\} (\d+)$/m,
        cacheHit: /^cache_requests_total\{result="hit"\} (\d+)$/m,
      };
      const snapshot = (m: string) => Object.fromEntries(Object.entries(counters).map(([k, re]) => [k, valueIn(m, re)])) as Record<keyof typeof counters, number>;
      const before = snapshot(await scrape());
      const samplesBefore = await count();

      // A success, a hanging upstream (3 timed-out calls), a payload that is not an array, and a
      // success with one record that has no timestamp (invalid however old the data is).
      const ok = await postRefresh(app);
      upstream.mode = { kind: 'hang' };
      const hung = await postRefresh(app);
      upstream.mode = { kind: 'json', body: { message: 'rate limited' } };
      const notArray = await postRefresh(app);
      upstream.mode = { kind: 'json', body: [...fixture, 'junk'] };
      const junk = await postRefresh(app);
      expect([ok, hung, notArray, junk].map((r) => r.statusCode)).toEqual([200, 502, 502, 200]);
      expect((await get('/is-bitcoin-lit')).headers['x-cache']).toBe('HIT');

      const m = await scrape();
      const after = snapshot(m);
      const added = Object.fromEntries(Object.keys(counters).map((k) => [k, after[k as keyof typeof counters] - before[k as keyof typeof counters]]));
      expect(added).toEqual({
        success: 2,
        upstreamError: 1,
        payloadError: 1,
        priceStored: (await count()) - samplesBefore,
        invalid: 1,
        transient: 3,
        refresh502: 2,
        cacheHit: 1,
      });
      expect(valueIn(m, /^ingest_last_success_timestamp_seconds (\d+)$/m)).toBeGreaterThan(Date.now() / 1000 - 60);
      expect(m).toMatch(/^http_request_duration_seconds_count\{method="GET",route="\/is-bitcoin-lit",status="200"\} \d+$/m);
      expect(m).toMatch(/^process_cpu_seconds_total /m);
    });
  });
});

describe('security: refresh token, rate limits, CORS (e2e, real Redis)', () => {
  const prefix = uniquePrefix('sec');
  let redis: Redis;
  let upstream: FakeUpstream;
  const apps: NestFastifyApplication[] = [];
  const boot = async (env: Record<string, string>) => {
    const app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url, LOG_LEVEL: 'fatal', ...env });
    apps.push(app);
    return app;
  };

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    upstream = await new FakeUpstream(fixture).start();
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await upstream?.stop();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('POST /refresh needs the bearer token; wrong or missing is 401 and calls nothing upstream', async () => {
    const app = await boot({});
    upstream.calls = 0;
    for (const authorization of [undefined, 'Bearer wrong-token-wrong-token', `Basic ${TEST_REFRESH_TOKEN}`, `Bearer ${TEST_REFRESH_TOKEN}x`]) {
      const res = await app.inject({ method: 'POST', url: '/refresh', headers: authorization ? { authorization } : {} });
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.json()).toMatchObject({ statusCode: 401, message: 'Missing or invalid bearer token (Authorization: Bearer <REFRESH_TOKEN>)' });
    }
    expect(upstream.calls).toBe(0);
    expect((await postRefresh(app)).statusCode).toBe(200);
  });

  it('without REFRESH_TOKEN the endpoint is disabled with a 403', async () => {
    const app = await boot({ REFRESH_TOKEN: '' });
    const res = await postRefresh(app);
    expect(res.statusCode).toBe(403);
    expect(res.json().message).toBe('POST /refresh is disabled on this server (REFRESH_TOKEN is not set)');
  });

  it('rate limits per client across instances (counted in Redis): 429 with Retry-After; health is exempt', async () => {
    const limits = { THROTTLE_LIMIT: '5', THROTTLE_TTL_MS: '60000', REDIS_KEY_PREFIX: `${prefix}:rl` };
    const [a, b] = [await boot(limits), await boot(limits)];
    const statuses: number[] = [];
    // /series: /is-bitcoin-lit, answered from the cache, is not rate limited (rate-limit-policy e2e).
    for (const app of [a, b, a, b, a, b]) statuses.push((await app.inject({ method: 'GET', url: '/series' })).statusCode);
    expect(statuses.slice(0, 5)).not.toContain(429);
    const limited = await b.inject({ method: 'GET', url: '/series' });
    expect(statuses[5]).toBe(429);
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.json()).toMatchObject({ statusCode: 429, error: 'Too Many Requests', message: expect.stringMatching(/^Too many requests; retry in \d+ s$/) });
    expect((await a.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    await deleteKeys(redis, `${prefix}:rl`);
  });

  it('POST /refresh has its own, stricter limit', async () => {
    const app = await boot({ THROTTLE_REFRESH_LIMIT: '2', REDIS_KEY_PREFIX: `${prefix}:rr` });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await postRefresh(app)).statusCode);
    expect(statuses).toEqual([200, 200, 429]);
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    await deleteKeys(redis, `${prefix}:rr`);
  });

  it('CORS answers configured origins only', async () => {
    const app = await boot({ CORS_ORIGINS: 'https://dash.example' });
    const preflight = (origin: string) =>
      app.inject({ method: 'OPTIONS', url: '/is-bitcoin-lit', headers: { origin, 'access-control-request-method': 'GET' } });
    const allowed = await preflight('https://dash.example');
    expect(allowed.headers['access-control-allow-origin']).toBe('https://dash.example');
    // Answered by the CORS plugin's own hook: still the API's security headers and a request id.
    expect(allowed.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY' });
    expect(allowed.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect((await preflight('https://evil.example')).headers['access-control-allow-origin']).toBeUndefined();
    // The API's own headers are readable by the page (not only the CORS-safelisted ones).
    const read = await app.inject({ method: 'GET', url: '/series', headers: { origin: 'https://dash.example' } });
    const exposed = String(read.headers['access-control-expose-headers']).split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['X-Request-Id', 'Retry-After', 'X-Cache', 'Age', 'X-Series-Source', 'X-RateLimit-Remaining', 'X-RateLimit-Reset-refresh']));
    // An OPTIONS that is no preflight: an empty 204, not the plugin's text/plain 400.
    const plain = await app.inject({ method: 'OPTIONS', url: '/series/price' });
    expect(plain.statusCode).toBe(204);
    expect(plain.headers['x-request-id']).toBeDefined();
    // CORS's catch-all OPTIONS route matches every path: it must not turn unknown paths into 405s.
    const unknown = await app.inject({ method: 'GET', url: '/nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.headers.allow).toBeUndefined();
    expect((await app.inject({ method: 'DELETE', url: '/is-bitcoin-lit' })).headers.allow).toBe('GET, HEAD');
  });

  it('readiness goes red when the last successful ingest is older than HEALTH_INGEST_MAX_AGE_MS', async () => {
    const app = await boot({ HEALTH_INGEST_MAX_AGE_MS: '1', REDIS_KEY_PREFIX: `${prefix}:age` });
    await postRefresh(app);
    const res = await waitFor('ingest to age', async () => {
      const r = await app.inject({ method: 'GET', url: '/health/ready' });
      return r.statusCode === 503 && r;
    });
    expect(res.json().details.ingest).toMatchObject({ status: 'down', message: 'older than 1 ms' });
    await deleteKeys(redis, `${prefix}:age`);
  });
});

/** Tests that need an app of their own, each under its own prefix, dropped after it. */
describe('one app per test: storage repair, readiness at shutdown, no data yet (e2e, real Redis)', () => {
  let prefix = '';
  let t: TestApp | undefined;
  const start = async (name: string, env: Record<string, string> = {}) => {
    prefix = uniquePrefix(name);
    t = await startTestApp(prefix, fixture, { LOG_LEVEL: 'fatal', ...env });
    return t;
  };
  afterEach(async () => {
    if (t) await stopTestApp(prefix, t);
    t = undefined;
  });

  it('rebuilds a series that lost part of its keys (plain Redis: evicted or deleted by hand) at the next ingest and at startup, instead of failing every call for good', async () => {
    const { app, redis, upstream } = await start('ops-evicted');
    // The portable backend's layout (a sorted set and a metadata hash); native keys are one key.
    if (app.get(TimeseriesService).kind !== 'portable') return;
    expect((await postRefresh(app)).statusCode).toBe(200);
    const price = app.get(SeriesRepository).defs('price')[0].key;
    const before = (await app.inject({ method: 'GET', url: '/series/price?bucket=1h' })).json();
    expect(before.length).toBeGreaterThan(0);

    await redis.del(metaKey(price));
    // The run that meets it fails, and repairs it for the next one.
    expect((await postRefresh(app)).statusCode).toBeGreaterThanOrEqual(500);
    expect((await postRefresh(app)).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/series/price?bucket=1h' })).json()).toEqual(before);

    // At startup: a new instance starts and serves.
    await redis.del(metaKey(price));
    await app.close();
    t!.app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url, LOG_LEVEL: 'fatal' });
    expect((await t!.app.inject({ method: 'GET', url: '/series/price?bucket=1h' })).json()).toEqual(before);
  });

  it('answers readiness 503 "shutting down" once shutdown has begun, so load balancers move on while work in flight finishes', async () => {
    const { app } = await start('ops-closing', { HEALTH_INGEST_MAX_AGE_MS: '0' });
    expect((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    app.get(HealthController).beforeApplicationShutdown();
    const res = await app.inject({ method: 'GET', url: '/health/ready' });
    expect({ status: res.statusCode, message: res.json().message }).toEqual({ status: 503, message: 'Not ready: shutting down' });
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
  });

  it('repeats the summary\'s "no data" 503 for a second without reading Redis again (the route is not rate limited), and not once data came', async () => {
    const { app } = await start('ops-nothing');
    const get = () => app.inject({ method: 'GET', url: '/is-bitcoin-lit' });
    const first = Date.now();
    expect((await get()).statusCode).toBe(503);
    const reads = jest.spyOn(app.get(SeriesRepository), 'latest');
    for (let i = 0; i < 5; i++) expect((await get()).statusCode).toBe(503);
    // (A machine stalled past the second would rightly have read again.)
    if (Date.now() - first < 900) expect(reads).not.toHaveBeenCalled();
    expect((await postRefresh(app)).statusCode).toBe(200);
    expect((await get()).statusCode).toBe(200);
    reads.mockRestore();
  });
});
