/**
 * History queries (GET /series…) against the real Redis, after ingesting the recorded fixture
 * through a loopback upstream. Expected buckets are computed here from the fixture records,
 * independently of the service; compacted answers are also compared with the raw series'.
 */
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { detectBackend } from '../src/timeseries/backend-probe.js';
import { NativeTimeseriesBackend } from '../src/timeseries/native.backend.js';
import { PortableTimeseriesBackend } from '../src/timeseries/portable.backend.js';
import { SeriesRepository } from '../src/series/series.repository.js';
import { TimeseriesService } from '../src/timeseries/timeseries.service.js';
import type { Aggregation } from '../src/timeseries/timeseries.types.js';
import { bootApp, startTestApp, stopTestApp, postRefresh } from './support/app.js';
import { REDIS_URL, uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture, RawRecord } from './support/upstream.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const fixture = loadFixture();

type Metric = 'price' | 'sentiment';
/** The fields of a GET /series entry these tests read. */
type SeriesListItem = { key: string; sourceKey: string | null; labels: Record<string, string>; rules: unknown[] };
const records = fixture
  .map((r) => ({ t: Math.trunc((r.timestamp as number) * 1000), price: Number(r.btc_price), sentiment: r.mean as number }))
  .sort((a, b) => a.t - b.t);
const FIRST = records[0].t;
const LATEST = records[records.length - 1].t;

/** Textbook aggregates of the fixture's samples in [from, to], per epoch-aligned bucket, in time order. */
function expected(metric: Metric, from: number, to: number, bucketMs: number, aggregation: Aggregation, source: RawRecord[] = fixture) {
  const rows = source
    .map((r) => ({ t: Math.trunc((r.timestamp as number) * 1000), v: metric === 'price' ? Number(r.btc_price) : (r.mean as number) }))
    .filter((r) => r.t >= from && r.t <= to)
    .sort((a, b) => a.t - b.t);
  const buckets = new Map<number, number[]>();
  for (const r of rows) {
    const start = Math.floor(r.t / bucketMs) * bucketMs;
    buckets.set(start, [...(buckets.get(start) ?? []), r.v]);
  }
  return [...buckets.entries()].map(([start, values]) => {
    const n = values.length;
    const sum = values.reduce((a, v) => a + v, 0);
    const mean = sum / n;
    const value: Record<string, number> = {
      avg: mean,
      sum,
      count: n,
      min: Math.min(...values),
      max: Math.max(...values),
      first: values[0],
      last: values[n - 1],
      range: Math.max(...values) - Math.min(...values),
      'std.p': Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / n),
    };
    return { time: new Date(start).toISOString(), value: value[aggregation] };
  });
}

/**
 * Same buckets; values bit-equal for order-free aggregations; sums and averages within a
 * relative 1e-12 (sums of hourly sums round differently from one running sum); std.p within
 * 1e-9 (RedisTimeSeries' one-pass variance Σx² - (Σx)²/n cancels digits for prices near 34000,
 * the textbook reference here is two-pass).
 */
function expectSeries(actual: Array<{ time: string; value: number }>, wanted: Array<{ time: string; value: number }>, aggregation: string) {
  expect(actual.map((p) => p.time)).toEqual(wanted.map((p) => p.time));
  const relative = aggregation.startsWith('std') || aggregation.startsWith('var') ? 1e-9 : 1e-12;
  actual.forEach((p, i) => {
    if (['count', 'min', 'max', 'first', 'last', 'range'].includes(aggregation)) expect(p.value).toBe(wanted[i].value);
    else expect(Math.abs(p.value - wanted[i].value)).toBeLessThanOrEqual(relative * Math.abs(wanted[i].value) + 1e-15);
  });
}

const iso = (t: number) => new Date(t).toISOString();

describe('history queries (e2e, real Redis)', () => {
  const prefix = uniquePrefix('history');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  const get = (url: string) => app.inject({ method: 'GET', url });

  beforeAll(async () => {
    // Raw reads of two days at most (the raw series keeps 30): the fixture's day is within it.
    ({ redis, upstream, app } = await startTestApp(prefix, fixture, { TIMESERIES_5MIN_TIER: 'true', SERIES_MAX_RAW_SPAN_MS: String(2 * DAY) }));
    expect((await postRefresh(app)).json()).toMatchObject({ stored: 2 * 2474 });
  });

  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('knows the fixture span', () => {
    expect(iso(FIRST)).toBe('2021-07-06T17:30:26.345Z');
    expect(iso(LATEST)).toBe('2021-07-07T17:30:18.370Z');
  });

  it.each([
    ['price', '1h', 'avg', '1h+raw'],
    ['sentiment', '1h', 'avg', '1h+raw'],
    ['price', '3h', 'max', '1h+raw'],
    ['sentiment', '1d', 'sum', '1h+raw'],
    ['price', '2h', 'range', '1h+raw'],
    ['price', '6h', 'first', '1h+raw'],
    ['sentiment', '4h', 'last', '1h+raw'],
    ['sentiment', '1h', 'count', '1h+raw'],
    ['price', '30m', 'min', '5m+raw'],
    ['sentiment', '5m', 'avg', '5m+raw'],
    ['price', '15m', 'sum', '5m+raw'],
    ['sentiment', '90m', 'max', '5m+raw'],
    ['price', '30m', 'std.p', 'raw'],
    ['price', '2h', 'std.p', 'raw'],
    ['price', '7m', 'avg', 'raw'],
  ] as const)('%s bucket=%s aggregation=%s over the whole fixture equals the fixture (%s)', async (metric, bucket, aggregation, source) => {
    const bucketMs = {
      '5m': 300_000,
      '7m': 420_000,
      '15m': 900_000,
      '30m': 1_800_000,
      '90m': 5_400_000,
      '1h': HOUR,
      '2h': 2 * HOUR,
      '3h': 3 * HOUR,
      '4h': 4 * HOUR,
      '6h': 6 * HOUR,
      '1d': DAY,
    }[bucket];
    const res = await get(`/series/${metric}?from=${FIRST}&to=${iso(LATEST)}&bucket=${bucket}&aggregation=${aggregation}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-series-source']).toBe(source);
    const wanted = expected(metric, FIRST, LATEST, bucketMs, aggregation);
    expect(wanted.length).toBeGreaterThan(1);
    expectSeries(res.json(), wanted, aggregation);
  });

  it('answers closed whole hours from the hourly compaction alone, bit-equal to the raw series', async () => {
    const from = Date.parse('2021-07-06T18:00:00Z');
    const to = Date.parse('2021-07-07T17:00:00Z') - 1;
    const ts = app.get(TimeseriesService);
    for (const aggregation of ['avg', 'sum', 'count', 'min', 'max', 'first', 'last', 'range'] as const) {
      const res = await get(`/series/price?from=${iso(from)}&to=${to}&bucket=1h&aggregation=${aggregation}`);
      expect(res.headers['x-series-source']).toBe('1h');
      const raw = await ts.range({ key: `${prefix}:price:mean:30s`, from, to, aggregation: { type: aggregation, bucketMs: HOUR } });
      expect(raw).toHaveLength(23);
      expect(res.json()).toEqual(raw.map((s) => ({ time: iso(s.timestamp), value: s.value })));
    }
  });

  it('answers closed 5 min buckets from the 5-minute compaction alone, bit-equal to the raw series', async () => {
    const from = Date.parse('2021-07-06T17:35:00Z');
    const to = Date.parse('2021-07-07T17:30:00Z') - 1;
    const ts = app.get(TimeseriesService);
    for (const aggregation of ['avg', 'sum', 'count', 'min', 'max', 'first', 'last', 'range'] as const) {
      const res = await get(`/series/price?from=${iso(from)}&to=${to}&bucket=5m&aggregation=${aggregation}`);
      expect(res.headers['x-series-source']).toBe('5m');
      const raw = await ts.range({ key: `${prefix}:price:mean:30s`, from, to, aggregation: { type: aggregation, bucketMs: 300_000 } });
      expect(raw).toHaveLength(287);
      expect(res.json()).toEqual(raw.map((s) => ({ time: iso(s.timestamp), value: s.value })));
    }
  });

  it('24 h in 5 min buckets (cut edges and the open bucket raw) is the raw answer bit for bit', async () => {
    const ts = app.get(TimeseriesService);
    for (const aggregation of ['avg', 'sum', 'count', 'min', 'max', 'first', 'last'] as const) {
      const res = await get(`/series/sentiment?from=${LATEST - DAY}&to=${LATEST}&bucket=5m&aggregation=${aggregation}`);
      expect(res.headers['x-series-source']).toBe('5m+raw');
      const raw = await ts.range({ key: `${prefix}:sentiment:mean:30s`, from: LATEST - DAY, to: LATEST, aggregation: { type: aggregation, bucketMs: 300_000 } });
      expect(raw).toHaveLength(289);
      expect(res.json()).toEqual(raw.map((s) => ({ time: iso(s.timestamp), value: s.value })));
    }
  });

  it('keeps hour multiples off the 5-minute tier: a cut hour is read raw, as before', async () => {
    const res = await get(`/series/price?from=2021-07-07T10:20:00Z&to=2021-07-07T14:10:00Z&bucket=1h&aggregation=avg`);
    expect(res.headers['x-series-source']).toBe('1h+raw');
    const day = await get(`/series/price?from=2021-07-06T17:40:00Z&to=${LATEST}&bucket=1d&aggregation=avg`);
    expect(day.headers['x-series-source']).toBe('1h+raw');
  });

  it('uses the daily compaction for a closed day, hourly for the closed hours of the open day, raw for the rest', async () => {
    const from = Date.parse('2021-07-06T00:00:00Z');
    const to = Date.parse('2021-07-08T00:00:00Z') - 1;
    for (const aggregation of ['sum', 'count', 'avg', 'max', 'first', 'last'] as const) {
      const res = await get(`/series/sentiment?from=2021-07-06&to=${to}&bucket=1d&aggregation=${aggregation}`);
      expect(res.headers['x-series-source']).toBe('1d+1h+raw');
      const wanted = expected('sentiment', from, to, DAY, aggregation);
      expect(wanted.map((w) => w.time)).toEqual(['2021-07-06T00:00:00.000Z', '2021-07-07T00:00:00.000Z']);
      expectSeries(res.json(), wanted, aggregation);
    }
  });

  it('answers a closed day from the daily compaction alone', async () => {
    const res = await get('/series/price?from=2021-07-06&to=2021-07-06T23:59:59.999Z&bucket=1d&aggregation=count');
    expect(res.headers['x-series-source']).toBe('1d');
    expect(res.json()).toEqual([{ time: '2021-07-06T00:00:00.000Z', value: records.filter((r) => r.t < Date.parse('2021-07-07')).length }]);
  });

  it('gives the README example: daily max price of the fixture days', async () => {
    const res = await get('/series/price?from=2021-07-06&to=2021-07-08&bucket=1d&aggregation=max');
    expect(res.json()).toEqual([
      { time: '2021-07-06T00:00:00.000Z', value: 34244.56 },
      { time: '2021-07-07T00:00:00.000Z', value: 35059.42 },
    ]);
  });

  it('labels a bucket cut by `from` with its start and counts only samples in range', async () => {
    const from = Date.parse('2021-07-07T10:20:00Z');
    const to = Date.parse('2021-07-07T14:10:00Z');
    const res = await get(`/series/price?from=${iso(from)}&to=${iso(to)}&bucket=1h&aggregation=count`);
    expect(res.headers['x-series-source']).toBe('1h+raw');
    const body = res.json();
    expect(body[0].time).toBe('2021-07-07T10:00:00.000Z');
    expectSeries(body, expected('price', from, to, HOUR, 'count'), 'count');
  });

  it('defaults to the last 24 h before the newest sample, hourly averages', async () => {
    const res = await get('/series/price');
    expect(res.statusCode).toBe(200);
    const wanted = expected('price', LATEST - DAY, LATEST, HOUR, 'avg');
    expect(wanted).toHaveLength(25);
    expectSeries(res.json(), wanted, 'avg');
  });

  it('GET /series/combined aligns both metrics by bucket', async () => {
    const res = await get(`/series/combined?from=${FIRST}&to=${LATEST}&bucket=1h&aggregation=avg`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-series-source']).toBe('price=1h+raw, sentiment=1h+raw');
    const body = res.json();
    const price = expected('price', FIRST, LATEST, HOUR, 'avg');
    const sentiment = expected('sentiment', FIRST, LATEST, HOUR, 'avg');
    expectSeries(body.map((r: { time: string; price: number }) => ({ time: r.time, value: r.price })), price, 'avg');
    expectSeries(body.map((r: { time: string; sentiment: number }) => ({ time: r.time, value: r.sentiment })), sentiment, 'avg');
  });

  it('twa: a 400 saying why where the backend cannot compute it (portable), the series where it can', async () => {
    for (const path of ['/series/price', '/series/combined']) {
      const res = await get(`${path}?aggregation=twa`);
      if (app.get(TimeseriesService).kind === 'portable') {
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ statusCode: 400, message: expect.stringMatching(/^aggregation twa is not supported by the portable/) });
      } else {
        expect(res.statusCode).toBe(200);
      }
    }
  });

  it.each([
    ['from=2021-07-07T12:00:00Z&to=2021-07-07T11:00:00Z', /^from \(2021-07-07T12:00:00.000Z\) must not be after to \(2021-07-07T11:00:00.000Z\)$/],
    ['aggregation=median', /^aggregation must be one of: avg, sum, min, max, range, count, first, last, std.p, std.s, var.p, var.s, twa$/],
    ['bucket=1ms&from=2021-07-06&to=2021-07-07', /^this query could return 86400001 points per series, more than SERIES_MAX_POINTS \(5000\)/],
    ['bucket=5x', /^bucket must be a positive integer and a unit/],
    ['bucket=0h', /^bucket must be a positive integer and a unit/],
    ['from=yesterday', /^from must be an ISO-8601 time with a zone/],
    ['to=2021-07-07T12:00:00', /^to must be an ISO-8601 time with a zone/],
    ['from=2021-02-30', /^from is not a valid time: 2021-02-30$/],
    // Computed from raw samples (no compaction holds them): SERIES_MAX_RAW_SPAN_MS at most, so one
    // read cannot hold Redis for long; the range counts up to the raw series' retention (30 days).
    ['from=2021-06-01&to=2021-07-07&bucket=1d&aggregation=std.p', /^aggregation=std.p is computed from raw samples, and this range would read 30 days of them, more than SERIES_MAX_RAW_SPAN_MS allows \(2 days\): use a shorter range, or avg, sum/],
    ['from=2021-07-04&to=2021-07-07&bucket=13m', /^a bucket of 780000 ms \(no compaction tier divides it\) is computed from raw samples, and this range would read 3 days of them, .*: use a shorter range, or a bucket of whole hours$/],
    ['limit=5', /^property limit should not exist$/],
    ['toString=1', /^property toString should not exist$/], // names every object has: the whitelist alone let them through
    ['__proto__=x', /^property __proto__ should not exist$/],
  ])('400 for %s, saying why', async (query, message) => {
    for (const path of ['/series/price', '/series/combined']) {
      const res = await get(`${path}?${query}`);
      expect(res.statusCode).toBe(400);
      const body = res.json();
      expect(body).toMatchObject({ statusCode: 400, error: 'Bad Request' });
      expect([body.message].flat().join('\n')).toMatch(message);
    }
  });

  it('a bucket whose samples are all equal has a spread of 0, not null (TS.RANGE rounds its variance below zero)', async () => {
    // 34798.04 alone: the module's variance formula (Σx² - 2·Σx·Σx/n + (Σx/n)²·n)/n gives -2.4e-7 for it, std nan.
    const at = '2021-07-07T07:16:28.258Z';
    for (const aggregation of ['std.p', 'var.p', 'std.s', 'var.s']) {
      const res = await get(`/series/price?from=${at}&to=${at}&bucket=1s&aggregation=${aggregation}`);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual([{ time: '2021-07-07T07:16:28.000Z', value: 0 }]);
    }
    // The same bucket through /series/combined, where null means "no sample".
    const res = await get(`/series/combined?from=${at}&to=${at}&bucket=1s&aggregation=std.p`);
    expect(res.json()).toEqual([{ time: '2021-07-07T07:16:28.000Z', price: 0, sentiment: 0 }]);
  });

  it('without a to, a from past the newest sample is an empty answer (polling for what is new), not a 400', async () => {
    for (const path of ['/series/price', '/series/combined']) {
      const res = await get(`${path}?from=${LATEST + 1}`);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual([]);
    }
  });

  it('400 for an unknown metric', async () => {
    const res = await get('/series/gold');
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toBe('metric must be one of: price, sentiment (got "gold")');
  });

  it('GET /series lists the raw series and their compactions with TS.INFO', async () => {
    const res = await get('/series');
    expect(res.statusCode).toBe(200);
    const list = res.json<Array<Record<string, unknown>>>();
    expect(list).toHaveLength(2 * (1 + 3 * 6));
    const raw = list.find((s) => s.key === `${prefix}:price:mean:30s`);
    expect(raw).toMatchObject({
      metric: 'price',
      totalSamples: 2474,
      firstTimestamp: FIRST,
      lastTimestamp: LATEST,
      firstTime: iso(FIRST),
      lastTime: iso(LATEST),
      retentionMs: 30 * DAY,
      sourceKey: null,
      labels: { metric: 'price', source: 'senticrypt', app: 'is-bitcoin-lit' },
    });
    expect(raw?.rules).toHaveLength(18);
    expect(raw?.rules).toContainEqual({ destKey: `{${prefix}:price:mean:30s}:sum:1h`, aggregation: 'sum', bucketMs: HOUR });
    expect(raw?.rules).toContainEqual({ destKey: `{${prefix}:price:mean:30s}:sum:5m`, aggregation: 'sum', bucketMs: 300_000 });
    const hourlySum = list.find((s) => s.key === `{${prefix}:price:mean:30s}:sum:1h`);
    expect(hourlySum).toMatchObject({
      sourceKey: `${prefix}:price:mean:30s`,
      rules: [],
      retentionMs: 2 * 365 * DAY,
      labels: { metric: 'price', aggregation: 'sum', bucket: '1h', complete_from: '0' },
      // 25 hours touched; the open one (17:00 on 07-07) is not written yet.
      totalSamples: 24,
      firstTime: '2021-07-06T17:00:00.000Z',
      lastTime: '2021-07-07T16:00:00.000Z',
    });
    expect(list.find((s) => s.key === `{${prefix}:sentiment:mean:30s}:count:1d`)).toMatchObject({ totalSamples: 1, retentionMs: 0 });
    // 24 h and a few seconds: 289 buckets touched; the open one (17:30 on 07-07) is not written yet.
    expect(list.find((s) => s.key === `{${prefix}:price:mean:30s}:last:5m`)).toMatchObject({
      sourceKey: `${prefix}:price:mean:30s`,
      retentionMs: 7 * DAY,
      labels: { metric: 'price', aggregation: 'last', bucket: '5m', complete_from: '0' },
      totalSamples: 288,
      firstTime: '2021-07-06T17:30:00.000Z',
      lastTime: '2021-07-07T17:25:00.000Z',
    });
  });

  it('documents the history endpoints in Swagger and serves the dashboard as HTML at /', async () => {
    const doc = (await get('/docs-json')).json<{ paths: Record<string, unknown> }>();
    expect(doc.paths['/']).toBeUndefined();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/series', '/series/combined', '/series/{metric}']));
    const params = (doc.paths['/series/{metric}'] as { get: { parameters: Array<{ name: string; schema: Record<string, unknown> }> } }).get.parameters;
    expect(params.find((p) => p.name === 'metric')?.schema.enum).toEqual(['price', 'sentiment']);
    expect(params.find((p) => p.name === 'aggregation')?.schema).toMatchObject({ enum: expect.arrayContaining(['avg', 'std.p', 'twa']), example: 'avg' });
    expect(params.find((p) => p.name === 'bucket')?.schema).toMatchObject({ example: '1h' });
    const page = await get('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain("new EventSource('/events')");
  });

  it('a restart keeps the rules and their complete_from marks as they are', async () => {
    const second = await bootApp({ REDIS_KEY_PREFIX: prefix, TIMESERIES_5MIN_TIER: 'true', SENTIMENT_API_URL: upstream.url });
    try {
      const list = (await second.inject({ method: 'GET', url: '/series' })).json<SeriesListItem[]>();
      expect(list.find((s) => s.key === `${prefix}:price:mean:30s`)?.rules).toHaveLength(18);
      expect(list.filter((s) => s.sourceKey).every((s) => s.labels.complete_from === '0')).toBe(true);
    } finally {
      await second.close();
    }
  });
});

describe('history over data stored before the compaction rules existed (e2e, real Redis)', () => {
  const prefix = uniquePrefix('history-old');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  const get = (url: string) => app.inject({ method: 'GET', url });
  const firstHalf = fixture.slice(0, 1500);

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    // The raw series as an older version of the service left them: data, no rules.
    const backend = (await detectBackend(redis)) === 'native' ? new NativeTimeseriesBackend(redis) : new PortableTimeseriesBackend(redis);
    for (const metric of ['price', 'sentiment'] as const) {
      const key = `${prefix}:${metric}:mean:30s`;
      await backend.ensureSeries(key, { retentionMs: 0, labels: {} });
      await backend.addMany(key, firstHalf.map((r) => ({ timestamp: Math.trunc((r.timestamp as number) * 1000), value: metric === 'price' ? Number(r.btc_price) : (r.mean as number) })));
    }
    upstream = await new FakeUpstream(fixture).start();
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, TIMESERIES_5MIN_TIER: 'true', SENTIMENT_API_URL: upstream.url });
  });

  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('marks the compactions complete only after the bucket of the newest sample at rule creation', async () => {
    const newest = Math.max(...firstHalf.map((r) => Math.trunc((r.timestamp as number) * 1000)));
    const list = (await get('/series')).json<SeriesListItem[]>();
    const hourly = list.find((s) => s.key === `{${prefix}:price:mean:30s}:sum:1h`);
    expect(hourly?.labels.complete_from).toBe(String(Math.floor(newest / HOUR) * HOUR + HOUR));
  });

  it('answers from the raw series until compactions cover the range, with the same values', async () => {
    const url = `/series/price?from=${FIRST}&to=${LATEST}&bucket=1h&aggregation=avg`;
    const before = await get(url);
    expect(before.headers['x-series-source']).toBe('raw');
    expectSeries(before.json(), expected('price', FIRST, LATEST, HOUR, 'avg', firstHalf), 'avg');
    // Those raw reads are bounded like any (SERIES_MAX_RAW_SPAN_MS), saying why the range is read raw.
    const strict = await bootApp({ REDIS_KEY_PREFIX: prefix, TIMESERIES_5MIN_TIER: 'true', SENTIMENT_API_URL: upstream.url, SERIES_MAX_RAW_SPAN_MS: String(6 * HOUR) });
    try {
      const refused = await strict.inject({ method: 'GET', url });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().message).toMatch(/^The part of this range the compactions do not cover \(yet\) is computed from raw samples, and this range would read 24 hours of them, more than SERIES_MAX_RAW_SPAN_MS allows \(6 hours\)/);
    } finally {
      await strict.close();
    }

    // The rest of the day arrives: hours after the mark come from the compaction, older ones stay raw.
    await postRefresh(app);
    const after = await get(url);
    expect(after.headers['x-series-source']).toBe('1h+raw');
    expectSeries(after.json(), expected('price', FIRST, LATEST, HOUR, 'avg'), 'avg');
  });

  it('a compaction whose mark was lost is trusted only after the newest bucket at the next startup', async () => {
    await postRefresh(app); // the whole day stored (already, unless this test runs alone)
    const ts = app.get(TimeseriesService);
    const dest = `{${prefix}:price:mean:30s}:sum:1h`;
    const info = await ts.info(dest);
    const { complete_from: _dropped, ...labels } = info!.labels;
    await ts.ensureSeries(dest, { retentionMs: info!.retentionMs, labels });
    const restarted = await bootApp({ REDIS_KEY_PREFIX: prefix, TIMESERIES_5MIN_TIER: 'true', SENTIMENT_API_URL: upstream.url });
    try {
      expect((await restarted.get(TimeseriesService).info(dest))?.labels.complete_from).toBe(String(Math.floor(LATEST / HOUR) * HOUR + HOUR));
      const res = await restarted.inject({ method: 'GET', url: `/series/price?from=${FIRST}&to=${LATEST}&bucket=1h&aggregation=avg` });
      expect(res.headers['x-series-source']).toBe('raw');
      expectSeries(res.json(), expected('price', FIRST, LATEST, HOUR, 'avg'), 'avg');
    } finally {
      await restarted.close();
    }
  });

  it('plans each query on the coverage it reads: a mark moved since the last query of the kind is obeyed at once', async () => {
    await postRefresh(app); // the whole day stored (already, unless this test runs alone)
    const url = `/series/price?from=${FIRST}&to=${LATEST}&bucket=1h&aggregation=avg`;
    const ts = app.get(TimeseriesService);
    const dest = `{${prefix}:price:mean:30s}:sum:1h`;
    const info = (await ts.info(dest))!;
    const mark = info.labels.complete_from;
    const setMark = (t: number | string) => ts.ensureSeries(dest, { retentionMs: info.retentionMs, labels: { ...info.labels, complete_from: String(t) } });
    try {
      // The mark the rule got at creation (the test before may have moved it).
      const newest = Math.max(...firstHalf.map((r) => Math.trunc((r.timestamp as number) * 1000)));
      await setMark(Math.floor(newest / HOUR) * HOUR + HOUR);
      expect((await get(url)).headers['x-series-source']).toBe('1h+raw');
      // As a rule re-created over existing data would leave it: nothing before the newest bucket is trusted.
      await setMark(Math.floor(LATEST / HOUR) * HOUR + HOUR);
      const res = await get(url);
      expect(res.headers['x-series-source']).toBe('raw');
      expectSeries(res.json(), expected('price', FIRST, LATEST, HOUR, 'avg'), 'avg');
    } finally {
      await setMark(mark);
    }
  });
});

describe('history after an upgrade that turns the 5-minute tier on (TIMESERIES_5MIN_TIER) (e2e, real Redis)', () => {
  const prefix = uniquePrefix('history-5m');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  const get = (url: string) => app.inject({ method: 'GET', url });
  const firstHalf = fixture.slice(0, 1500);
  const newest = Math.max(...firstHalf.map((r) => Math.trunc((r.timestamp as number) * 1000)));
  const FIVE_MINUTES = 300_000;
  const raw = `${prefix}:price:mean:30s`;
  /** The rules the release before the 5-minute tier created, in its order: per tier, per aggregation. */
  const oldRules = ['1h', '1d'].flatMap((tier) =>
    ['sum', 'count', 'min', 'max', 'first', 'last'].map((aggregation) => ({
      destKey: `{${raw}}:${aggregation}:${tier}`,
      aggregation,
      bucketMs: tier === '1h' ? HOUR : DAY,
    })),
  );

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    // What that release left: the raw series with their hourly and daily rules (complete from
    // the start), fed through the rules, and no 5-minute compaction.
    const backend = (await detectBackend(redis)) === 'native' ? new NativeTimeseriesBackend(redis) : new PortableTimeseriesBackend(redis);
    for (const metric of ['price', 'sentiment'] as const) {
      const key = `${prefix}:${metric}:mean:30s`;
      const labels = { metric, source: 'senticrypt', app: 'is-bitcoin-lit' };
      await backend.ensureSeries(key, { retentionMs: 30 * DAY, labels });
      for (const tier of ['1h', '1d']) {
        for (const aggregation of ['sum', 'count', 'min', 'max', 'first', 'last'] as const) {
          const destKey = `{${key}}:${aggregation}:${tier}`;
          await backend.ensureSeries(destKey, { retentionMs: 0, labels: { ...labels, aggregation, bucket: tier, complete_from: '0' } });
          await backend.ensureRule(key, { destKey, aggregation, bucketMs: tier === '1h' ? HOUR : DAY });
        }
      }
      await backend.addMany(key, firstHalf.map((r) => ({ timestamp: Math.trunc((r.timestamp as number) * 1000), value: metric === 'price' ? Number(r.btc_price) : (r.mean as number) })));
    }
    upstream = await new FakeUpstream(fixture).start();
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, TIMESERIES_5MIN_TIER: 'true', SENTIMENT_API_URL: upstream.url });
  });

  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('adds the 5-minute rules after the existing ones, complete only after the bucket of the newest sample; the others keep their marks', async () => {
    const list = (await get('/series')).json<SeriesListItem[]>();
    const rules = list.find((s) => s.key === raw)?.rules;
    expect(rules?.slice(0, 12)).toEqual(oldRules);
    expect(rules?.slice(12)).toEqual(
      ['sum', 'count', 'min', 'max', 'first', 'last'].map((aggregation) => ({ destKey: `{${raw}}:${aggregation}:5m`, aggregation, bucketMs: FIVE_MINUTES })),
    );
    const mark = String(Math.floor(newest / FIVE_MINUTES) * FIVE_MINUTES + FIVE_MINUTES);
    const fiveMinutes = list.filter((s) => s.sourceKey && s.labels.bucket === '5m');
    expect(fiveMinutes).toHaveLength(2 * 6);
    for (const s of fiveMinutes) expect(s.labels).toMatchObject({ complete_from: mark, settle_after: String(newest) });
    expect(list.filter((s) => s.sourceKey && s.labels.bucket !== '5m').every((s) => s.labels.complete_from === '0')).toBe(true);
  });

  it('reads 5 min buckets before the mark from the raw series, after it from the 5-minute compaction, with the same values', async () => {
    const url = `/series/price?from=${FIRST}&to=${LATEST}&bucket=5m&aggregation=avg`;
    const before = await get(url);
    expect(before.headers['x-series-source']).toBe('raw');
    expectSeries(before.json(), expected('price', FIRST, LATEST, FIVE_MINUTES, 'avg', firstHalf), 'avg');

    // The rest of the day arrives: 5 min buckets after the mark come from the compaction, older ones stay raw.
    await postRefresh(app);
    const ts = app.get(TimeseriesService);
    for (const aggregation of ['avg', 'count', 'max', 'first'] as const) {
      const after = await get(`/series/price?from=${FIRST}&to=${LATEST}&bucket=5m&aggregation=${aggregation}`);
      expect(after.headers['x-series-source']).toBe('5m+raw');
      const rawAnswer = await ts.range({ key: raw, from: FIRST, to: LATEST, aggregation: { type: aggregation, bucketMs: FIVE_MINUTES } });
      expect(after.json()).toEqual(rawAnswer.map((s) => ({ time: iso(s.timestamp), value: s.value })));
      expectSeries(after.json(), expected('price', FIRST, LATEST, FIVE_MINUTES, aggregation), aggregation);
    }
    // The 5-minute compaction holds nothing before its mark: the rule never saw those samples.
    const compacted = await ts.range({ key: `{${raw}}:count:5m`, from: 0, to: LATEST });
    expect(compacted[0].timestamp).toBe(Math.floor(newest / FIVE_MINUTES) * FIVE_MINUTES);
    // Hourly queries keep reading the hourly compaction, complete from the start.
    expect((await get(`/series/price?from=${FIRST}&to=${LATEST}&bucket=1h&aggregation=avg`)).headers['x-series-source']).toBe('1h+raw');
  });
});

describe('history after a restart that turns the 5-minute tier on, the first poll re-sending the newest sample (e2e, real Redis)', () => {
  const prefix = uniquePrefix('history-5m-repoll');
  const env = { REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/unused' };
  const raw = `${prefix}:price:mean:30s`;
  const T = Date.parse('2021-07-07T10:00:00Z');
  const MINUTE = 60_000;
  let redis: Redis;
  let app: NestFastifyApplication | undefined;

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });

  afterAll(() => stopTestApp(prefix, { app, redis }));

  it('keeps reading the raw series for the first 5 min bucket the new rules write, which also holds the bucket the newest sample was in', async () => {
    app = await bootApp(env);
    await app.get(TimeseriesService).add(raw, [
      { timestamp: T, value: 1 },
      { timestamp: T + 31 * MINUTE, value: 2 },
      { timestamp: T + 34 * MINUTE, value: 3 },
    ]);
    await app.close();
    app = await bootApp({ ...env, TIMESERIES_5MIN_TIER: 'true' }); // 5 min compactions complete from 10:35, to settle after 10:34
    const ts = app.get(TimeseriesService);
    const series = app.get(SeriesRepository); // how ingest writes
    const [price] = series.defs('price');
    const count5m = `{${raw}}:count:5m`;
    expect((await ts.info(count5m))?.labels).toMatchObject({ complete_from: String(T + 35 * MINUTE), settle_after: String(T + 34 * MINUTE) });
    await series.add(price, [{ timestamp: T + 34 * MINUTE, value: 3 }]); // the newest again: a duplicate
    await series.add(price, [{ timestamp: T + 40 * MINUTE, value: 4 }]); // the first newer sample: the rules' first bucket, 10:40
    // Settled by that write: past the first bucket, for every instance.
    const labels = (await ts.info(count5m))?.labels;
    expect(labels?.complete_from).toBe(String(T + 45 * MINUTE));
    expect(labels).not.toHaveProperty('settle_after');
    // Late, between the newest at the upgrade and the first newer one: the first sample past the
    // former from here on, yet not the one that opened the rules' first bucket.
    await series.add(price, [{ timestamp: T + 36 * MINUTE, value: 7 }]);
    await series.add(price, [{ timestamp: T + 46 * MINUTE, value: 5 }]); // closes 10:40
    await series.add(price, [{ timestamp: T + 52 * MINUTE, value: 6 }]); // closes 10:45
    // As RedisTimeSeries does, the duplicate re-read 10:30's samples (two then) into the rules'
    // running aggregate, and their first bucket kept them.
    expect(await ts.range({ key: count5m, from: T + 40 * MINUTE, to: T + 40 * MINUTE })).toEqual([{ timestamp: T + 40 * MINUTE, value: 3 }]);
    for (const [bucketStart, source, value] of [
      [T + 40 * MINUTE, 'raw', 4],
      [T + 45 * MINUTE, '5m', 5],
    ] as const) {
      for (const aggregation of ['count', 'sum', 'min', 'first', 'avg'] as const) {
        const [from, to] = [bucketStart, bucketStart + 5 * MINUTE - 1];
        const res = await app.inject({ method: 'GET', url: `/series/price?from=${from}&to=${to}&bucket=5m&aggregation=${aggregation}` });
        expect(res.headers['x-series-source']).toBe(source);
        const rawAnswer = await ts.range({ key: raw, from, to, aggregation: { type: aggregation, bucketMs: 300_000 } });
        expect(rawAnswer).toEqual([{ timestamp: from, value: aggregation === 'count' ? 1 : value }]);
        expect(res.json()).toEqual(rawAnswer.map((s) => ({ time: iso(s.timestamp), value: s.value })));
      }
    }
  });
});
