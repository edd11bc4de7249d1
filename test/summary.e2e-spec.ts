import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { SummaryEvents } from '../src/summary/summary.events.js';
import { SummaryService } from '../src/summary/summary.service.js';
import { VerdictService } from '../src/verdict/verdict.service.js';
import { TimeseriesService } from '../src/timeseries/timeseries.service.js';
import { DATED_AHEAD, postRefresh, startTestApp, stopTestApp } from './support/app.js';
import { deleteKeys, uniquePrefix } from './support/redis.js';
import { nowClearOfHourEdges, waitFor } from './support/wait.js';
import { expectedSummary, expectSummaryBody } from './support/expected-summary.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

const HOUR = 3_600_000;
const fixture = loadFixture();

describe('core loop: ingest → time series → cached summary (e2e, real Redis)', () => {
  const prefix = uniquePrefix('core');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;

  const get = (url: string) => app.inject({ method: 'GET', url });
  const post = (url: string) => postRefresh(app, url);
  const series = (metric: string) => `${prefix}:${metric}:mean:30s`;
  const sampleCount = async (metric: string) =>
    (await app.get(TimeseriesService).range({ key: series(metric), from: 0, to: Date.now() })).length;

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, fixture));
  });

  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('answers 503 with Retry-After and a JSON error before any data exists', async () => {
    const res = await get('/is-bitcoin-lit');
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    expect(res.json()).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      message: 'No samples stored yet; the first ingest has not completed',
      requestId: res.headers['x-request-id'],
    });
  });

  it('creates both series at startup with DUPLICATE_POLICY FIRST, labels and retention', async () => {
    const ts = app.get(TimeseriesService);
    for (const metric of ['price', 'sentiment']) {
      const info = await ts.info(series(metric));
      expect(info).toMatchObject({
        totalSamples: 0,
        retentionMs: 30 * 24 * 3600 * 1000,
        labels: { metric, source: 'senticrypt', app: 'is-bitcoin-lit' },
      });
      expect(info?.duplicatePolicy.toLowerCase()).toBe('first');
    }
  });

  it('POST /refresh ingests the whole payload and reports what it did', async () => {
    const res = await post('/refresh');
    expect(res.statusCode).toBe(200);
    const report = res.json();
    expect(report).toMatchObject({
      attempts: 1,
      fetched: 2474,
      invalid: 0,
      skipped: 0,
      stored: 2 * 2474,
      duplicates: 0,
      rejected: 0,
      series: { price: { stored: 2474, duplicates: 0, rejected: 0 }, sentiment: { stored: 2474, duplicates: 0, rejected: 0 } },
    });
    const newest = Math.max(...fixture.map((r) => Math.trunc((r.timestamp as number) * 1000)));
    expect(report.latestSampleTime).toBe(new Date(newest).toISOString());
    expect(await sampleCount('price')).toBe(2474);
    expect(await sampleCount('sentiment')).toBe(2474);
  });

  it('stores price and sentiment exactly, at Math.trunc(timestamp * 1000)', async () => {
    const first = fixture[0];
    const t = Math.trunc((first.timestamp as number) * 1000);
    const ts = app.get(TimeseriesService);
    expect(await ts.range({ key: series('price'), from: t, to: t })).toEqual([{ timestamp: t, value: 33885.23 }]);
    expect(await ts.range({ key: series('sentiment'), from: t, to: t })).toEqual([{ timestamp: t, value: 0.2 }]);
  });

  it('GET /is-bitcoin-lit returns hourly averages equal to ones computed from the fixture, with numeric directions', async () => {
    const res = await get('/is-bitcoin-lit');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const expected = expectedSummary(fixture);
    expect(expected).toHaveLength(3);
    expect(body.hourly_average_of_averages.map((h: { time: string }) => h.time)).toEqual(expected.map((e) => e.time));
    expect(body.hourly_average_of_averages.map((h: { time: string }) => h.time)).toEqual([
      '2021-07-07T15:00:00.000Z',
      '2021-07-07T16:00:00.000Z',
      '2021-07-07T17:00:00.000Z',
    ]);
    expectSummaryBody(body, fixture);
  });

  it('serves the summary through the Redis cache: MISS, then HIT, key present under the prefix with the TTL', async () => {
    await redis.del(`${prefix}:cache`);
    const miss = await get('/is-bitcoin-lit');
    expect(miss.headers['x-cache']).toBe('MISS');
    const ttl = await redis.ttl(`${prefix}:cache`);
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
    const stored = JSON.parse((await redis.get(`${prefix}:cache`)) as string);
    expect(stored.value).toEqual(miss.json());
    const hit = await get('/is-bitcoin-lit');
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual(miss.json());
  });

  it('computes concurrent cache misses once in a process', async () => {
    await redis.del(`${prefix}:cache`);
    const compute = jest.spyOn(app.get(SummaryService), 'compute');
    try {
      const responses = await Promise.all(Array.from({ length: 20 }, () => get('/is-bitcoin-lit')));
      expect(responses.every((r) => r.statusCode === 200)).toBe(true);
      expect(compute).toHaveBeenCalledTimes(1);
      expect(new Set(responses.map((r) => r.body)).size).toBe(1);
    } finally {
      compute.mockRestore();
    }
  });

  it('an empty query is the bare path (a cache hit, never a computation); a parameter named like an object property is refused', async () => {
    expect((await get('/is-bitcoin-lit')).statusCode).toBe(200); // cached
    const compute = jest.spyOn(app.get(SummaryService), 'compute');
    try {
      for (const url of ['/is-bitcoin-lit?', '/is-bitcoin-lit?&', '/is-bitcoin-lit?&&&']) {
        const res = await get(url);
        expect(res.statusCode).toBe(200);
        expect(res.headers['x-cache']).toBe('HIT');
      }
      for (const name of ['toString', 'constructor', 'hasOwnProperty', '__proto__']) {
        const res = await get(`/is-bitcoin-lit?${name}=1`);
        expect(res.statusCode).toBe(400);
        expect(res.json().message).toEqual([`property ${name} should not exist`]);
      }
      expect(compute).not.toHaveBeenCalled();
    } finally {
      compute.mockRestore();
    }
  });

  it('ingest primes the cache: the first GET after a refresh is a HIT', async () => {
    await redis.del(`${prefix}:cache`);
    expect((await post('/refresh')).statusCode).toBe(200);
    expect(await redis.exists(`${prefix}:cache`)).toBe(1);
    expect((await get('/is-bitcoin-lit')).headers['x-cache']).toBe('HIT');
  });

  it('re-ingest is idempotent: only new samples are sent, a full re-send counts duplicates and doubles nothing', async () => {
    const again = (await post('/refresh')).json();
    expect(again).toMatchObject({ fetched: 2474, skipped: 2474, stored: 0, duplicates: 0, rejected: 0 });
    const full = (await post('/refresh?full=true')).json();
    expect(full).toMatchObject({ fetched: 2474, skipped: 0, stored: 0, duplicates: 2 * 2474, rejected: 0 });
    expect(await sampleCount('price')).toBe(2474);
    expect(await sampleCount('sentiment')).toBe(2474);
  });

  it('rejects a malformed refresh query with a 400 naming the field', async () => {
    const res = await post('/refresh?full=maybe');
    expect(res.statusCode).toBe(400);
    expect(JSON.stringify(res.json().message)).toContain('full');
    const unknown = await post('/refresh?fulll=true');
    expect(unknown.statusCode).toBe(400);
    expect(JSON.stringify(unknown.json().message)).toContain('fulll');
  });

  describe('upstream failures leave stored data intact', () => {
    let before: string;
    beforeAll(async () => {
      before = (await get('/is-bitcoin-lit')).body;
    });
    afterEach(() => {
      upstream.mode = { kind: 'json', body: fixture };
    });

    it.each([
      ['HTTP 500', { kind: 'status', status: 500 } as const, /HTTP 500/],
      ['HTTP 404', { kind: 'status', status: 404 } as const, /HTTP 404/],
      ['non-JSON', { kind: 'raw', body: '<html>oops</html>' } as const, /not JSON/],
      ['a JSON object', { kind: 'json', body: { error: 'nope' } } as const, /not a JSON array \(got object\)/],
    ])('%s → 502 with the reason, no sample changed', async (_name, mode, reason) => {
      upstream.mode = mode;
      const res = await post('/refresh?full=true');
      expect(res.statusCode).toBe(502);
      expect(res.json().message).toMatch(reason);
      expect(res.body).not.toMatch(/at .*\.ts|stack/i);
      expect(await sampleCount('price')).toBe(2474);
      expect((await get('/is-bitcoin-lit')).body).toBe(before);
    });

    it('retries a transient 500 and not a permanent 404', async () => {
      upstream.mode = { kind: 'status', status: 500 };
      upstream.calls = 0;
      await post('/refresh');
      expect(upstream.calls).toBe(3); // 1 + SENTIMENT_API_RETRIES (2)
      upstream.mode = { kind: 'status', status: 404 };
      upstream.calls = 0;
      await post('/refresh');
      expect(upstream.calls).toBe(1);
    });
  });
});

describe('ingest validation and incremental runs (e2e, real Redis)', () => {
  const prefix = uniquePrefix('ingest');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  const post = (url: string) => postRefresh(app, url);

  beforeAll(async () => {
    // Its last test ingests records dated in 2030.
    ({ redis, upstream, app } = await startTestApp(prefix, [], DATED_AHEAD));
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('skips and counts bad records, stores the good ones of the same payload', async () => {
    const good = fixture.slice(0, 10);
    const bad: unknown[] = [
      { ...fixture[10], btc_price: 'abc' },
      { ...fixture[11], btc_price: '' },
      { ...fixture[12], mean: null },
      { ...fixture[13], mean: '0.2' },
      { ...fixture[14], timestamp: 'yesterday' },
      { ...fixture[15], btc_price: -5 },
      { count: 1 },
      'not an object',
      null,
      [1, 2],
    ];
    upstream.mode = { kind: 'json', body: [...good.slice(0, 5), ...bad, ...good.slice(5)] };
    const report = (await post('/refresh')).json();
    expect(report).toMatchObject({ fetched: 20, invalid: 10, stored: 20, rejected: 0 });
    expect(report.invalidReasons).toHaveLength(5);
    expect(report.invalidReasons[0]).toMatch(/#5: btc_price is not a number/);
    const ts = app.get(TimeseriesService);
    expect(await ts.range({ key: `${prefix}:price:mean:30s`, from: 0, to: Date.now() })).toHaveLength(10);
  });

  it('an incremental run sends only samples newer than the latest stored one', async () => {
    upstream.mode = { kind: 'json', body: fixture.slice(0, 100) };
    const report = (await post('/refresh')).json();
    expect(report).toMatchObject({ fetched: 100, skipped: 10, stored: 180, duplicates: 0 });
  });

  it('re-creates the series when Redis has lost them, instead of rejecting every sample', async () => {
    await deleteKeys(redis, prefix); // as after a restart without persistence
    upstream.mode = { kind: 'json', body: fixture.slice(0, 50) };
    const report = (await post('/refresh')).json();
    expect(report).toMatchObject({ fetched: 50, stored: 100, rejected: 0 });
    const info = await app.get(TimeseriesService).info(`${prefix}:price:mean:30s`);
    expect(info).toMatchObject({ totalSamples: 50, labels: { metric: 'price', source: 'senticrypt', app: 'is-bitcoin-lit' } });
    expect(info?.duplicatePolicy.toLowerCase()).toBe('first');
  });

  it('negative sentiment is compared as a number (the original compared strings)', async () => {
    const base = Date.UTC(2030, 0, 1, 10, 0, 0) / 1000;
    upstream.mode = {
      kind: 'json',
      body: [
        { timestamp: base + 60, btc_price: '100', mean: -0.5 },
        { timestamp: base + 3600 + 60, btc_price: '90', mean: -0.3 },
        { timestamp: base + 7200 + 60, btc_price: '80', mean: -0.1 },
      ],
    };
    expect((await post('/refresh')).statusCode).toBe(200);
    const body = (await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
    expect(body).toEqual({
      hourly_average_of_averages: [
        { price: 100, sentiment: -0.5, time: '2030-01-01T10:00:00.000Z' },
        { price: 90, sentiment: -0.3, time: '2030-01-01T11:00:00.000Z' },
        { price: 80, sentiment: -0.1, time: '2030-01-01T12:00:00.000Z' },
      ],
      sentiment_direction: 'rising',
      price_direction: 'falling',
      // The v1 feed is frozen: the window ends at its newest sample, and each metric says so.
      as_of: '2030-01-01T12:01:00.000Z',
      metrics: {
        price: { source: 'senticrypt-v1', unit: 'USD', cadence: 'tick', latest_sample_time: '2030-01-01T12:01:00.000Z', stale: false },
        sentiment: { source: 'senticrypt-v1', unit: 'score -1..1', cadence: 'tick', latest_sample_time: '2030-01-01T12:01:00.000Z', stale: false },
      },
      // Price falling, sentiment rising. Its start depends on what earlier tests left recorded.
      verdict: 'mixed',
      verdict_since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });
});

describe('SUMMARY_ANCHOR=now (e2e, real Redis)', () => {
  const prefix = uniquePrefix('now');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    // Prices of 1, 100 and 200 seconds apart: the jump guard (its own tests) would refuse them.
    ({ redis, upstream, app } = await startTestApp(prefix, fixture, { SUMMARY_ANCHOR: 'now', PRICE_MAX_JUMP_PCT: '0' }));
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('answers 503 when the stored data is older than the window ending now', async () => {
    expect((await postRefresh(app)).statusCode).toBe(200);
    const res = await app.inject({ method: 'GET', url: '/is-bitcoin-lit' });
    expect(res.statusCode).toBe(503);
    expect(res.json().message).toBe('No samples in the last 3 hour(s) yet');
  });

  it('summarises the hours ending at the current time', async () => {
    // Not within seconds of an hour's end: the hour must not turn between the refresh and the read.
    const hourStart = Math.floor((await nowClearOfHourEdges()) / HOUR) * HOUR;
    const at = (t: number, price: string, mean: number) => ({ timestamp: t / 1000, btc_price: price, mean });
    upstream.mode = {
      kind: 'json',
      body: [
        at(hourStart - 3 * HOUR + 1000, '1', 0.9), // before the window
        at(hourStart - 2 * HOUR + 1000, '100', 0.1),
        at(hourStart - 2 * HOUR + 2000, '200', 0.3),
        at(hourStart - HOUR + 1000, '150', 0.2),
        at(hourStart, '120', 0.4),
      ],
    };
    expect((await postRefresh(app)).json()).toMatchObject({ stored: 10 });
    const body = (await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
    expect(body).toEqual({
      hourly_average_of_averages: [
        { price: 150, sentiment: 0.2, time: new Date(hourStart - 2 * HOUR).toISOString() },
        { price: 150, sentiment: 0.2, time: new Date(hourStart - HOUR).toISOString() },
        { price: 120, sentiment: 0.4, time: new Date(hourStart).toISOString() },
      ],
      price_direction: 'falling',
      sentiment_direction: 'rising',
      as_of: expect.any(String),
      metrics: {
        price: { source: 'senticrypt-v1', unit: 'USD', cadence: 'tick', latest_sample_time: new Date(hourStart).toISOString(), stale: expect.any(Boolean) },
        sentiment: {
          source: 'senticrypt-v1',
          unit: 'score -1..1',
          cadence: 'tick',
          latest_sample_time: new Date(hourStart).toISOString(),
          stale: expect.any(Boolean),
        },
      },
      verdict: 'mixed',
      verdict_since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(Date.parse(body.as_of)).toBeGreaterThanOrEqual(hourStart);
  });
});

describe('a summary older than one already recorded (another instance, slower) (e2e, real Redis)', () => {
  const prefix = uniquePrefix('stale-summary');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, fixture));
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('is neither cached nor announced: the newer answer stays for every instance', async () => {
    // Another instance has recorded (and cached) a summary as of a later time than this data's.
    const newer = { verdict: 'cold', as_of: '2031-03-01T00:00:00.000Z', verdict_since: null, price_direction: 'falling', sentiment_direction: 'falling' };
    await app.get(VerdictService).record(newer as unknown as Parameters<VerdictService['record']>[0]);
    const cached = JSON.stringify({ value: { marker: 'the newer summary' }, storedAt: Date.now() });
    await redis.set(`${prefix}:cache`, cached, 'EX', 60);

    const events: unknown[] = [];
    app.get(SummaryEvents).on((e) => void events.push(e.summary));
    expect((await postRefresh(app)).statusCode).toBe(200); // the 2021 day: older than 2031
    await waitFor('the refresh after the run', async () => events.length === 1);
    expect(events).toEqual([null]);
    expect(await redis.get(`${prefix}:cache`)).toBe(cached);
  });
});
