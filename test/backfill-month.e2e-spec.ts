import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { sameSlotKey } from '../src/redis/key-slot.js';
import { CompactionService } from '../src/series/compaction.service.js';
import { COMPACTED } from '../src/series/series.catalog.js';
import { SeriesRepository } from '../src/series/series.repository.js';
import { TimeseriesService } from '../src/timeseries/timeseries.service.js';
import type { Aggregation, Sample } from '../src/timeseries/timeseries.types.js';
import { bootApp, postRefresh } from './support/app.js';
import { FakeSources, hourlyCloseAt, liveData, PATHS, priceAt } from './support/fake-sources.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { sampleCount, storedSamples } from './support/series.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

interface Part {
  from: string;
  to: string;
  stored: number;
  duplicates: number;
  error: string | null;
}
interface SourceReport {
  stored: number;
  backfill: Part | null;
  hourlyBackfill?: Part;
}

/** The one price source's report of a POST /refresh. */
async function refresh(app: NestFastifyApplication, source: string): Promise<SourceReport> {
  const res = await postRefresh(app);
  expect(res.statusCode).toBe(200);
  const outcome = res.json<{ sources: Array<{ source: string; ok: boolean; report: SourceReport }> }>().sources.find((s) => s.source === source)!;
  expect(outcome.ok).toBe(true);
  return outcome.report;
}

/** Every compaction series of the price series (key per tier and aggregation). */
function compactionKeys(app: NestFastifyApplication): string[] {
  const compactions = app.get(CompactionService);
  const def = app.get(SeriesRepository).defs('price')[0];
  return compactions.tiers.flatMap((tier) => COMPACTED.map((aggregation) => compactions.key(def, aggregation, tier)));
}

/**
 * The compactions TS.CREATERULE computes from `samples` added to a raw series: a reference
 * series with the app's tiers (and their retention: the 5-minute tier keeps 7 days of the
 * month), through the app's own time-series layer (so this holds on both backends), keyed per
 * compaction like the app's ones.
 */
async function ruleCompactions(app: NestFastifyApplication, prefix: string, samples: Sample[]): Promise<Sample[][]> {
  const timeseries = app.get(TimeseriesService);
  const ref = `${prefix}:reference`;
  await timeseries.ensureSeries(ref, { retentionMs: 0, labels: {} });
  const keys: string[] = [];
  for (const tier of app.get(CompactionService).tiers) {
    for (const aggregation of COMPACTED) {
      const dest = sameSlotKey(ref, `${aggregation}:${tier.name}`);
      await timeseries.ensureSeries(dest, { retentionMs: tier.retentionMs, labels: {} });
      await timeseries.ensureRule(ref, { destKey: dest, aggregation, bucketMs: tier.bucketMs });
      keys.push(dest);
    }
  }
  await timeseries.add(ref, samples);
  return Promise.all(keys.map((k) => storedSamples(app, k)));
}

/** TS.RANGE … AGGREGATION over samples held in memory: epoch-aligned buckets, empty ones left out. */
function aggregate(samples: Sample[], from: number, to: number, bucketMs: number, aggregation: Aggregation): Sample[] {
  const buckets = new Map<number, number[]>();
  for (const s of samples.filter((x) => x.timestamp >= from && x.timestamp <= to)) {
    const b = s.timestamp - (s.timestamp % bucketMs);
    buckets.set(b, [...(buckets.get(b) ?? []), s.value]);
  }
  return [...buckets].map(([timestamp, v]) => {
    const value = aggregation === 'avg' ? v.reduce((a, b) => a + b, 0) / v.length : aggregation === 'min' ? Math.min(...v) : aggregation === 'max' ? Math.max(...v) : v.length;
    return { timestamp, value };
  });
}

describe('A month on the first start (e2e: loopback venues, real Redis)', () => {
  const prefix = uniquePrefix('month');
  const now = Date.now();
  let fake: FakeSources;
  let redis: Redis;
  const apps: NestFastifyApplication[] = [];

  const boot = async (p: string, price: string, env: Record<string, string> = {}) => {
    // With the 5-minute tier, so the month's backfill is checked in it too.
    const app = await bootApp({ REDIS_KEY_PREFIX: p, TIMESERIES_5MIN_TIER: 'true', ...fake.env({ price }), ...env });
    apps.push(app);
    return app;
  };

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    fake = await new FakeSources(liveData(now, 32)).start();
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await fake?.stop();
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });

  describe.each(['coinbase', 'bitstamp', 'kraken'])('%s', (venue) => {
    const p = `${prefix}:${venue}`;
    let app: NestFastifyApplication;
    let report: SourceReport;
    /** What the series hold, as one raw series would: an hourly close per hour of the month before the minutes, then the minutes and the ticker. */
    let equivalent: Sample[];
    let fineFrom: number;

    beforeAll(async () => {
      app = await boot(p, venue);
      report = await refresh(app, venue);
    });

    it('lands in the right resolutions: the last 24 h (Kraken: 12 h) by the minute, the month before by the hour', async () => {
      expect(report.backfill?.error).toBeNull();
      expect(report.hourlyBackfill?.error).toBeNull();
      fineFrom = Date.parse(report.backfill!.from);
      const appNow = Date.parse(report.backfill!.to);
      expect(fineFrom % HOUR).toBe(0);
      expect(appNow - fineFrom).toBeGreaterThanOrEqual(venue === 'kraken' ? 11 * HOUR - 2 * MINUTE : DAY);
      expect(Date.parse(report.hourlyBackfill!.to)).toBe(fineFrom - 1);

      // Every whole hour of the 30 days (the venues serve 720 hours, the newest still open), none twice.
      const firstHour = Math.floor(appNow / HOUR) * HOUR - 719 * HOUR;
      const hours: number[] = [];
      for (let h = firstHour; h < fineFrom; h += HOUR) hours.push(h);
      expect(report.hourlyBackfill!.stored).toBe(hours.length);

      // The raw series: the hourly closes of the boundary day only (before that, the compactions
      // hold them), then every closed minute, then the ticker.
      const raw = await storedSamples(app, app.get(SeriesRepository).defs('price')[0].key);
      const day = Math.floor(fineFrom / DAY) * DAY;
      expect(raw.filter((s) => s.timestamp < fineFrom)).toEqual(hours.filter((h) => h >= day).map((h) => ({ timestamp: h, value: hourlyCloseAt(h) })));
      const minutes = raw.filter((s) => s.timestamp >= fineFrom && s.timestamp % MINUTE === 0);
      expect(minutes.map((s) => s.timestamp)).toEqual(Array.from({ length: minutes.length }, (_, i) => fineFrom + i * MINUTE));
      expect(minutes.every((s) => s.value === priceAt(s.timestamp))).toBe(true);
      expect(minutes.at(-1)!.timestamp).toBeGreaterThanOrEqual(Math.floor(now / MINUTE) * MINUTE - 2 * MINUTE);

      // Every compaction holds exactly what TS.CREATERULE computes from one raw series holding
      // the month's hourly closes followed by what the raw series holds.
      equivalent = [...hours.filter((h) => h < day).map((h) => ({ timestamp: h, value: hourlyCloseAt(h) })), ...raw];
      const expected = await ruleCompactions(app, p, equivalent);
      const actual = await Promise.all(compactionKeys(app).map((k) => storedSamples(app, k)));
      expect(actual).toEqual(expected);
      expect(actual[COMPACTED.indexOf('count')].slice(0, hours.length)).toEqual(hours.map((h) => ({ timestamp: h, value: 1 })));
    });

    it.each([
      ['1h', 'avg'],
      ['1d', 'avg'],
      ['1d', 'max'],
      ['1d', 'count'],
    ] as const)('answers /series exactly across the minute/hour boundary (bucket %s, %s)', async (bucket, aggregation) => {
      const [from, to] = [now - 30 * DAY, Date.parse(report.backfill!.to)];
      const res = await app.inject({ method: 'GET', url: `/series/price?from=${from}&to=${to}&bucket=${bucket}&aggregation=${aggregation}` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-series-source']).toMatch(bucket === '1d' ? /^1d\+/ : /^1h\+/);
      const got = res.json<Array<{ time: string; value: number }>>();
      const want = aggregate(equivalent, from, to, bucket === '1d' ? DAY : HOUR, aggregation);
      expect(got.map((g) => g.time)).toEqual(want.map((w) => new Date(w.timestamp).toISOString()));
      got.forEach((g, i) => expect(Math.abs(g.value - want[i].value)).toBeLessThanOrEqual(Math.abs(want[i].value) * 1e-12));
    });

    it.each(['avg', 'count'] as const)('answers 5 min buckets of the last 6 days from the 5-minute compactions, the hourly closes included (%s)', async (aggregation) => {
      const [from, to] = [now - 6 * DAY, Date.parse(report.backfill!.to)];
      const res = await app.inject({ method: 'GET', url: `/series/price?from=${from}&to=${to}&bucket=5m&aggregation=${aggregation}` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-series-source']).toBe('5m+raw');
      const got = res.json<Array<{ time: string; value: number }>>();
      const want = aggregate(equivalent, from, to, 5 * MINUTE, aggregation);
      expect(want.filter((w) => w.timestamp < fineFrom).length).toBeGreaterThan(4 * 24);
      expect(got.map((g) => g.time)).toEqual(want.map((w) => new Date(w.timestamp).toISOString()));
      got.forEach((g, i) => expect(Math.abs(g.value - want[i].value)).toBeLessThanOrEqual(Math.abs(want[i].value) * 1e-12));
    });

    it("gives the dashboard's 30 d chart (/series/combined, hourly) a price in every hour of the month", async () => {
      // The month as the first run saw it: 719 closed hours before the run's hour (the venues'
      // 720 rows, the open one dropped), then whatever the run stored up to its newest sample.
      // Which hour that newest sample falls in depends on the clock (a run in the first minute of
      // an hour has no closed minute in it yet; Kraken's ticker is stamped when it answers), so
      // the chart must have no hole from the month's first hour up to that sample's hour.
      const first = Math.floor(Date.parse(report.backfill!.to) / HOUR) * HOUR - 719 * HOUR;
      const raw = await storedSamples(app, app.get(SeriesRepository).defs('price')[0].key);
      const last = Math.floor(raw.at(-1)!.timestamp / HOUR) * HOUR;
      const res = await app.inject({ method: 'GET', url: `/series/combined?bucket=1h&aggregation=avg&from=${first}&to=${raw.at(-1)!.timestamp}` });
      expect(res.statusCode).toBe(200);
      const hours = res.json<Array<{ time: string; price: number | null }>>().filter((p) => p.price !== null);
      expect(hours.map((h) => Date.parse(h.time))).toEqual(Array.from({ length: (last - first) / HOUR + 1 }, (_, i) => first + i * HOUR));
      expect(hours.length).toBeGreaterThanOrEqual(719);
    });

    it('stores nothing twice on the next start: no backfill, 0 new samples, every series unchanged', async () => {
      const keys = [app.get(SeriesRepository).defs('price')[0].key, ...compactionKeys(app)];
      // Up to the first run's hour: a Kraken poll (stamped now) may close that hour's buckets.
      const before = Math.floor(Date.parse(report.backfill!.to) / HOUR) * HOUR;
      const snapshot = (a: NestFastifyApplication) => Promise.all(keys.map(async (k) => (await storedSamples(a, k)).filter((s) => s.timestamp < before)));
      const [counts, held] = [await sampleCount(app, keys[0]), await snapshot(app)];
      const restarted = await boot(p, venue);
      const again = await refresh(restarted, venue);
      expect(again).toMatchObject({ backfill: null });
      expect(again.hourlyBackfill).toBeUndefined();
      // Kraken's ticker has no time: its poll is stamped now, one new sample; the others trade no more.
      expect(again.stored).toBe(venue === 'kraken' ? 1 : 0);
      expect(await sampleCount(restarted, keys[0])).toBe(counts + again.stored);
      expect(await snapshot(restarted)).toEqual(held);
    });
  });

  it('paces each venue under its published limit: Kraken about once a second by default, any venue as UPSTREAM_MIN_INTERVAL_MS says', async () => {
    const venueCalls = (path: string) => fake.requests.filter((r) => r.path.startsWith(path));
    const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]);
    const requests = fake.requests.length;
    // Unset (empty is unset): Kraken's own spacing. Its first start is 3 calls: ticker, hours, minutes.
    const kraken = await boot(`${prefix}:paced-kraken`, 'kraken', { UPSTREAM_MIN_INTERVAL_MS: '' });
    await refresh(kraken, 'kraken');
    const krakenCalls = venueCalls('/kraken/').filter((r) => fake.requests.indexOf(r) >= requests);
    expect(krakenCalls).toHaveLength(3);
    for (const gap of gaps(krakenCalls.map((r) => r.at))) expect(gap).toBeGreaterThanOrEqual(1000);

    // Coinbase's 8-9 calls (ticker, 3 of hours, 5-6 of minutes), 50 ms apart as configured.
    const from = fake.requests.length;
    const coinbase = await boot(`${prefix}:paced-coinbase`, 'coinbase', { UPSTREAM_MIN_INTERVAL_MS: '50' });
    await refresh(coinbase, 'coinbase');
    const coinbaseCalls = venueCalls('/coinbase/').filter((r) => fake.requests.indexOf(r) >= from);
    expect(coinbaseCalls.length).toBeGreaterThanOrEqual(9);
    for (const gap of gaps(coinbaseCalls.map((r) => r.at))) expect(gap).toBeGreaterThanOrEqual(50);
  });

  it('retries an hourly part that failed on the network where it would have landed, and stores nothing twice', async () => {
    const p = `${prefix}:retry`;
    const app = await boot(p, 'coinbase');
    // The first hourly call and its two retries get a 503; everything after answers.
    fake.override(PATHS.coinbaseCandles, { status: 503, times: 3 });
    const first = await refresh(app, 'coinbase');
    expect(first.hourlyBackfill).toMatchObject({ stored: 0, error: expect.stringMatching(/503/) });
    expect(first.backfill).toMatchObject({ error: null });
    const fineFrom = Date.parse(first.backfill!.from);

    const second = await refresh(app, 'coinbase');
    expect(second.hourlyBackfill).toMatchObject({ to: new Date(fineFrom - 1).toISOString(), error: null, duplicates: 0 });
    expect(second.hourlyBackfill!.stored).toBeGreaterThan(690);
    const third = await refresh(app, 'coinbase');
    expect(third.hourlyBackfill).toBeUndefined();

    // As if it had never failed: the compactions are those of one raw series holding it all.
    const raw = await storedSamples(app, app.get(SeriesRepository).defs('price')[0].key);
    const day = Math.floor(fineFrom / DAY) * DAY;
    const hours: number[] = [];
    for (let h = Math.ceil(Date.parse(second.hourlyBackfill!.from) / HOUR) * HOUR; h < day; h += HOUR) hours.push(h);
    const expected = await ruleCompactions(app, p, [...hours.map((h) => ({ timestamp: h, value: hourlyCloseAt(h) })), ...raw]);
    expect(await Promise.all(compactionKeys(app).map((k) => storedSamples(app, k)))).toEqual(expected);
  });
});
