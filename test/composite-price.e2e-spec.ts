import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { SeriesRepository } from '../src/series/series.repository.js';
import { bootApp, postRefresh } from './support/app.js';
import {
  bitstampOhlc,
  bitstampTicker,
  coinbaseCandles,
  coinbaseTicker,
  FakeSources,
  krakenOhlc,
  krakenTicker,
  liveData,
  PATHS,
  priceAt,
  senticryptV2Days,
} from './support/fake-sources.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { nowClearOfHourEdges } from './support/wait.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const VENUES = ['coinbase', 'kraken', 'bitstamp'] as const;
type Venue = (typeof VENUES)[number];

interface Summary {
  hourly_average_of_averages: Array<{ time: string; price: number | null; sentiment: number | null }>;
  price_direction: string | null;
  as_of: string;
  metrics: { price: Record<string, unknown> & { venues?: Array<Record<string, unknown>> } };
}

/** Loopback providers (data about `now`, as `adjust` leaves them) and an app on them under its own prefix. */
class Scenario {
  readonly prefix: string;
  fake!: FakeSources;
  app!: NestFastifyApplication;
  private redis?: Redis;

  constructor(name: string) {
    this.prefix = uniquePrefix(name);
  }

  async start(now: number, adjust: (fake: FakeSources) => void = () => undefined, env: Record<string, string> = {}): Promise<this> {
    this.redis = new Redis(REDIS_URL);
    this.fake = await new FakeSources(liveData(now)).start();
    adjust(this.fake);
    this.app = await bootApp({
      REDIS_KEY_PREFIX: this.prefix,
      ...this.fake.env({ price: VENUES.join(',') }),
      // The fakes hold 24 h; the summary needs the last 3.
      BACKFILL_HOURS: '4',
      ...env,
    });
    return this;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    await this.fake?.stop();
    if (!this.redis) return;
    await deleteKeys(this.redis, this.prefix);
    this.redis.disconnect();
  }

  async summary(): Promise<Summary> {
    const res = await this.app.inject({ method: 'GET', url: '/is-bitcoin-lit' });
    expect(res.statusCode).toBe(200);
    return res.json<Summary>();
  }

  /** Hourly means of one venue's stored samples, read through the series store (the same on both backends). */
  async venueHours(source: Venue): Promise<Map<number, number>> {
    const repository = this.app.get(SeriesRepository);
    const samples = await repository.range(repository.find('price', source)!, { from: 0, to: Date.now() + DAY });
    const sums = new Map<number, { sum: number; n: number }>();
    for (const s of samples) {
      const hour = Math.floor(s.timestamp / HOUR) * HOUR;
      const acc = sums.get(hour) ?? { sum: 0, n: 0 };
      sums.set(hour, { sum: acc.sum + s.value, n: acc.n + 1 });
    }
    return new Map([...sums].map(([h, { sum, n }]) => [h, sum / n]));
  }

  async newest(source: Venue): Promise<string> {
    const repository = this.app.get(SeriesRepository);
    const latest = await repository.latest(repository.find('price', source)!);
    return new Date(latest!.timestamp).toISOString();
  }
}

/** The median, computed here independently of the service. */
function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Each summary hour's price against the median of the given venues' means in that hour (null
 * where none has one). Returns, per venue, the summary hours it has data in.
 */
async function expectPricesFrom(s: Scenario, body: Summary, venues: Venue[]): Promise<Record<string, number>> {
  const hours = await Promise.all(venues.map((v) => s.venueHours(v)));
  expect(body.hourly_average_of_averages).toHaveLength(3);
  const used: Record<string, number> = Object.fromEntries(venues.map((v) => [v, 0]));
  let priced = 0;
  for (const h of body.hourly_average_of_averages) {
    const t = Date.parse(h.time);
    venues.forEach((v, i) => hours[i].has(t) && used[v]++);
    const values = hours.flatMap((m) => (m.has(t) ? [m.get(t)!] : []));
    if (values.length === 0) {
      expect(h.price).toBeNull();
      continue;
    }
    priced++;
    expect(h.price).toBeCloseTo(median(values), 6);
  }
  // The newest hours always have a price in these scenarios (a venue is fresh or stopped 30 min ago).
  expect(priced).toBeGreaterThanOrEqual(2);
  return used;
}

/** Summary hours in which `source` has data. */
async function hoursWithData(s: Scenario, body: Summary, source: Venue): Promise<number> {
  const hours = await s.venueHours(source);
  return body.hourly_average_of_averages.filter((h) => hours.has(Date.parse(h.time))).length;
}

const venue = (source: Venue, rest: Record<string, unknown>) => ({ source, unit: 'USD', cadence: 'tick', ...rest });

/**
 * Upgrade safety, byte for byte: a deployment with one PRICE_SOURCE, or only SENTIMENT_API_URL
 * (v1), answers exactly what it answered before composites existed. The expected bodies below
 * were produced by the code before the change (commit 2c3e105) from these same fixed datasets,
 * through the same loopback providers; the whole JSON is compared, key order included.
 */
describe('Upgrade paths answer byte for byte as before (e2e)', () => {
  const prefix = uniquePrefix('composite-upgrade');
  let redis: Redis;
  let fake: FakeSources;
  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    fake = await new FakeSources({ senticryptV2: senticryptV2Days(Date.UTC(2021, 6, 1), Date.UTC(2021, 6, 7)) }).start();
  });
  afterAll(async () => {
    await fake?.stop();
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });

  /** GET `url`'s body with the random prefix taken out, and its X-Series-Source. */
  async function get(app: NestFastifyApplication, url: string, keyPrefix: string): Promise<[string, unknown]> {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(200);
    return [res.body.split(keyPrefix).join('<prefix>'), res.headers['x-series-source'] ?? null];
  }

  /**
   * The summary as it was before the verdict (issue 15 adds `verdict` and `verdict_since` at the
   * end, on purpose): the two fields must be there, last, and everything before them unchanged.
   */
  function withoutVerdict([body, header]: [string, unknown]): [string, unknown] {
    const tail = /,"verdict":"(lit|cold|mixed|unknown)","verdict_since":("[^"]+"|null)\}$/;
    expect(body).toMatch(tail);
    return [body.replace(tail, '}'), header];
  }

  it('one venue (PRICE_SOURCE=coinbase): the same keys, numbers and responses', async () => {
    const keyPrefix = `${prefix}:coinbase`;
    const app = await bootApp({ REDIS_KEY_PREFIX: keyPrefix, ...fake.env({ price: 'coinbase' }), BACKFILL_HOURS: '0', SUMMARY_ANCHOR: 'latest' });
    try {
      // Nine trades, 20 min apart, polled one by one: 15:10 … 17:50 UTC on 2021-07-07.
      for (let k = 0; k < 9; k++) {
        fake.data.coinbaseTicker = coinbaseTicker(Date.UTC(2021, 6, 7, 15, 10 + 20 * k, 7, 250), 34000 + k * 10.37 + (k % 3) * 0.01);
        expect((await postRefresh(app)).statusCode).toBe(200);
      }
      const got = {
        summary: withoutVerdict(await get(app, '/is-bitcoin-lit', keyPrefix)),
        price: await get(app, '/series/price?from=2021-07-07T15:00:00Z&to=2021-07-07T18:00:00Z&bucket=1h', keyPrefix),
        max: await get(app, '/series/price?from=2021-07-07&to=2021-07-08&bucket=30m&aggregation=max', keyPrefix),
        combined: await get(app, '/series/combined?from=2021-07-07T15:00:00Z&to=2021-07-07T18:00:00Z&bucket=1h', keyPrefix),
        list: await get(app, '/series', keyPrefix),
      };
      expect(got).toEqual(ONE_VENUE_BEFORE);
    } finally {
      await app.close();
    }
  });

  it('v1 (SENTIMENT_API_URL alone): the same keys, numbers and responses', async () => {
    const keyPrefix = `${prefix}:v1`;
    const app = await bootApp({ REDIS_KEY_PREFIX: keyPrefix, SENTIMENT_API_URL: `${fake.origin}${PATHS.senticryptV1}` });
    try {
      expect((await postRefresh(app)).statusCode).toBe(200);
      const got = {
        summary: withoutVerdict(await get(app, '/is-bitcoin-lit', keyPrefix)),
        price: await get(app, '/series/price?bucket=3h', keyPrefix),
        combined: await get(app, '/series/combined?from=2021-07-07T12:00:00Z&bucket=2h&aggregation=last', keyPrefix),
        list: await get(app, '/series', keyPrefix),
      };
      expect(got).toEqual(V1_BEFORE);
    } finally {
      await app.close();
    }
  });
});

/** What the code before composites answered (commit 2c3e105): [raw body with the prefix taken out, X-Series-Source]. */
function before(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`fixtures/upgrade/${name}`, import.meta.url), 'utf8'));
}
const ONE_VENUE_BEFORE = before('one-venue-before.json');
const V1_BEFORE = before('v1-before.json');

describe('Composite price (e2e: three venues, real Redis, loopback providers)', () => {
  describe('three venues that agree, by default', () => {
    const s = new Scenario('composite-agree');
    let now: number;
    let res: Awaited<ReturnType<typeof postRefresh>>;
    beforeAll(async () => {
      now = await nowClearOfHourEdges();
      // The defaults: no PRICE_SOURCE (all three exchanges), no SENTIMENT_API_URL.
      await s.start(now, undefined, { PRICE_SOURCE: '', SENTIMENT_API_URL: '' });
      res = await postRefresh(s.app);
    });
    afterAll(() => s.stop());

    it('polls and backfills each venue on its own and keeps each in its own labelled series', async () => {
      expect(res.statusCode).toBe(200);
      const body = res.json<{ sources: Array<{ source: string; ok: boolean }> }>();
      expect(body.sources.map((o) => [o.source, o.ok])).toEqual([...VENUES.map((v) => [v, true]), ['senticrypt-v2', true]]);
      const list = (await s.app.inject({ method: 'GET', url: '/series' })).json<Array<{ metric: string; source: string; sourceKey: string | null; labels: Record<string, string>; totalSamples: number }>>();
      const raw = list.filter((e) => e.sourceKey === null);
      expect(raw.map((e) => [e.metric, e.source, e.labels.source])).toEqual([...VENUES.map((v) => ['price', v, v]), ['sentiment', 'senticrypt-v2', 'senticrypt-v2']]);
      for (const e of raw) expect(e.totalSamples).toBeGreaterThan(0);
      // Every venue's compactions are listed too.
      for (const v of VENUES) expect(list.filter((e) => e.source === v && e.sourceKey !== null).length).toBeGreaterThan(0);
    });

    it('totals each metric over every source that fed it in the refresh answer (three venues feed price)', () => {
      type Counts = { stored: number; duplicates: number; rejected: number };
      const body = res.json<{ stored: number; series: Record<string, Counts>; sources: Array<{ source: string; report: { series: Record<string, Counts> } }> }>();
      const venues = body.sources.filter((o) => VENUES.includes(o.source as (typeof VENUES)[number]));
      expect(venues).toHaveLength(3);
      const stored = venues.map((o) => o.report.series.price.stored);
      expect(stored.every((n) => n > 0)).toBe(true);
      expect(body.series.price).toEqual({ stored: stored.reduce((a, b) => a + b, 0), duplicates: 0, rejected: 0 });
      expect(body.series.price.stored + body.series.sentiment.stored).toBe(body.stored);
    });

    it('summary: the median of the venues\' hourly means, every venue used, fresh', async () => {
      const body = await s.summary();
      const used = await expectPricesFrom(s, body, [...VENUES]);
      expect(used.kraken).toBe(3); // its ticker is the poll's: always in the current hour
      expect(body.price_direction).toMatch(/^(rising|falling|flat)$/);
      const newest = (await Promise.all(VENUES.map((v) => s.newest(v)))).sort().at(-1);
      expect(body.metrics.price).toEqual({
        source: 'composite',
        unit: 'USD',
        cadence: 'tick',
        latest_sample_time: newest,
        stale: false,
        venues: await Promise.all(
          VENUES.map(async (v) => venue(v, { latest_sample_time: await s.newest(v), stale: false, hours_used: used[v], left_out: null, outlier_hours: 0 })),
        ),
        disagreement_hours: 0,
      });
    });

    it('GET /series/price is the composite (the summary\'s hours), ?source= one venue, a 400 for any other', async () => {
      const body = await s.summary();
      const from = body.hourly_average_of_averages[0].time;
      const res = await s.app.inject({ method: 'GET', url: `/series/price?from=${from}&to=${body.as_of}&bucket=1h` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-series-source']).toMatch(/^median\(coinbase:\S+ kraken:\S+ bitstamp:\S+\)$/);
      const points = res.json<Array<{ time: string; value: number }>>();
      expect(points.map((p) => p.time)).toEqual(body.hourly_average_of_averages.map((h) => h.time));
      points.forEach((p, i) => expect(p.value).toBeCloseTo(body.hourly_average_of_averages[i].price!, 6));

      const kraken = await s.app.inject({ method: 'GET', url: `/series/price?from=${from}&to=${body.as_of}&bucket=1h&source=kraken` });
      expect(kraken.statusCode).toBe(200);
      expect(kraken.headers['x-series-source']).not.toMatch(/median/);
      const krakenHours = await s.venueHours('kraken');
      for (const p of kraken.json<Array<{ time: string; value: number }>>()) expect(p.value).toBeCloseTo(krakenHours.get(Date.parse(p.time))!, 6);

      const combined = await s.app.inject({ method: 'GET', url: `/series/combined?from=${from}&to=${body.as_of}&bucket=1h` });
      expect(combined.headers['x-series-source']).toMatch(/^price=median\(.*\), sentiment=/);
      combined.json<Array<{ price: number }>>().forEach((r, i) => expect(r.price).toBeCloseTo(points[i].value, 6));

      for (const [source, message] of [
        ['binance', /source must be one of: coinbase, bitstamp, kraken/],
        ['fear-greed', /source must be one of the configured price sources: coinbase, kraken, bitstamp \(got "fear-greed"\)/],
      ] as const) {
        const bad = await s.app.inject({ method: 'GET', url: `/series/price?source=${source}` });
        expect(bad.statusCode).toBe(400);
        expect(String(bad.json().message)).toMatch(message);
      }
      // /series/combined has no `source` (its price is the composite): named in a 400 like any unknown parameter.
      const combinedSource = await s.app.inject({ method: 'GET', url: '/series/combined?source=kraken' });
      expect(combinedSource.statusCode).toBe(400);
      expect(String(combinedSource.json().message)).toMatch(/source/);
    });
  });

  describe('one venue 5 % off', () => {
    const s = new Scenario('composite-outlier');
    let now: number;
    const off = (t: number) => Number((priceAt(t) * 1.05).toFixed(1));
    beforeAll(async () => {
      // Kraken's ticker has no time: the service stamps it when it polls. In another hour than
      // the others' ticks, that hour would not hold all three, and nothing to call it an outlier.
      now = await nowClearOfHourEdges();
      await s.start(now, (f) => {
        f.data.krakenOhlc = krakenOhlc(now - DAY, Math.floor(now / MINUTE) * MINUTE, off);
        f.data.krakenTicker = krakenTicker(off(now));
      });
      expect((await postRefresh(s.app)).statusCode).toBe(200);
    });
    afterAll(() => s.stop());

    it('leaves it out of every hour and counts it; the price is the other two\'s mean', async () => {
      const body = await s.summary();
      const used = await expectPricesFrom(s, body, ['coinbase', 'bitstamp']);
      expect(body.metrics.price).toMatchObject({ source: 'composite', stale: false, disagreement_hours: 0 });
      expect(body.metrics.price.venues).toEqual([
        expect.objectContaining({ source: 'coinbase', hours_used: used.coinbase, left_out: null, outlier_hours: 0 }),
        expect.objectContaining({ source: 'kraken', stale: false, hours_used: 0, left_out: 'outlier', outlier_hours: 3 }),
        expect.objectContaining({ source: 'bitstamp', hours_used: used.bitstamp, left_out: null, outlier_hours: 0 }),
      ]);
      // The history leaves it out the same way; alone, it is served as it is.
      const from = body.hourly_average_of_averages[0].time;
      const points = (await s.app.inject({ method: 'GET', url: `/series/price?from=${from}&to=${body.as_of}` })).json<Array<{ value: number }>>();
      points.forEach((p, i) => expect(p.value).toBeCloseTo(body.hourly_average_of_averages[i].price!, 6));
      const alone = (await s.app.inject({ method: 'GET', url: `/series/price?from=${from}&to=${body.as_of}&source=kraken` })).json<Array<{ value: number }>>();
      alone.forEach((p, i) => expect(p.value / body.hourly_average_of_averages[i].price!).toBeCloseTo(1.05, 2));
    });

    it('a wider PRICE_OUTLIER_PCT keeps it: the median of the three', async () => {
      const wide = await bootApp({ REDIS_KEY_PREFIX: s.prefix, ...s.fake.env({ price: VENUES.join(',') }), PRICE_OUTLIER_PCT: '10' });
      try {
        const from = new Date(Math.floor(now / HOUR) * HOUR - 2 * HOUR).toISOString();
        const res = await wide.inject({ method: 'GET', url: `/series/price?bucket=1h&from=${from}&to=${new Date(now).toISOString()}` });
        // Same data, no venue left out: each full hour is the middle one of the three (the higher of
        // coinbase and bitstamp, kraken being 5 % above both), not the mean of those two.
        const [coinbase, bitstamp] = await Promise.all([s.venueHours('coinbase'), s.venueHours('bitstamp')]);
        const points = res.json<Array<{ time: string; value: number }>>();
        expect(points.length).toBeGreaterThanOrEqual(2);
        for (const p of points.slice(0, 2)) {
          const t = Date.parse(p.time);
          expect(p.value).toBeCloseTo(Math.max(coinbase.get(t)!, bitstamp.get(t)!), 6);
        }
      } finally {
        await wide.close();
      }
    });
  });

  describe('venues down', () => {
    let now: number;
    /** Data that stopped 30 min ago (PRICE_STALE_AFTER_MS is 10 min): the venue went down then. */
    let stoppedAt: number;
    beforeAll(async () => {
      now = await nowClearOfHourEdges();
      stoppedAt = now - 30 * MINUTE;
    });
    const stopCoinbase = (f: FakeSources) => {
      f.data.coinbaseCandles = coinbaseCandles(now - DAY, stoppedAt);
      f.data.coinbaseTicker = coinbaseTicker(stoppedAt);
    };
    const stopBitstamp = (f: FakeSources) => {
      f.data.bitstampOhlc = bitstampOhlc(now - DAY, stoppedAt);
      f.data.bitstampTicker = bitstampTicker(stoppedAt);
    };
    const down = (f: FakeSources, ...paths: string[]) => paths.forEach((p) => f.override(p, { status: 503 }));

    it('one venue down from the start: price stays fresh from the others, the venue is named (no data)', async () => {
      const s = await new Scenario('composite-one-down').start(now, (f) => down(f, PATHS.coinbaseTicker, PATHS.coinbaseCandles));
      try {
        const refresh = (await postRefresh(s.app)).json<{ sources: Array<{ source: string; ok: boolean; error: string | null }> }>();
        expect(refresh.sources.find((o) => o.source === 'coinbase')).toMatchObject({ ok: false, error: expect.stringMatching(/503/) });
        const body = await s.summary();
        const used = await expectPricesFrom(s, body, ['kraken', 'bitstamp']);
        expect(body.metrics.price).toMatchObject({ source: 'composite', stale: false });
        expect(body.metrics.price.venues).toEqual([
          venue('coinbase', { latest_sample_time: null, stale: true, hours_used: 0, left_out: 'no_data', outlier_hours: 0 }),
          expect.objectContaining({ source: 'kraken', stale: false, hours_used: used.kraken, left_out: null }),
          expect.objectContaining({ source: 'bitstamp', stale: false, hours_used: used.bitstamp, left_out: null }),
        ]);
      } finally {
        await s.stop();
      }
    });

    it('two down (one since the start, one since 30 min): the last venue alone makes a fresh price', async () => {
      const s = await new Scenario('composite-two-down').start(now, (f) => {
        down(f, PATHS.coinbaseTicker, PATHS.coinbaseCandles);
        stopBitstamp(f);
      });
      try {
        await postRefresh(s.app);
        const body = await s.summary();
        const used = await expectPricesFrom(s, body, ['kraken']);
        expect(await hoursWithData(s, body, 'bitstamp')).toBeGreaterThanOrEqual(2); // it has data, left out all the same
        expect(body.metrics.price).toMatchObject({ source: 'composite', stale: false, latest_sample_time: await s.newest('kraken') });
        expect(body.metrics.price.venues).toEqual([
          expect.objectContaining({ source: 'coinbase', left_out: 'no_data', hours_used: 0 }),
          expect.objectContaining({ source: 'kraken', stale: false, left_out: null, hours_used: used.kraken }),
          venue('bitstamp', { latest_sample_time: new Date(Math.floor(stoppedAt / 1000) * 1000).toISOString(), stale: true, hours_used: 0, left_out: 'stale', outlier_hours: 0 }),
        ]);
      } finally {
        await s.stop();
      }
    });

    it('all down: stale; what the venues had is still served, flagged; with no data at all, null and the 503 rule as before', async () => {
      const s = await new Scenario('composite-all-down').start(now, (f) => {
        down(f, PATHS.krakenTicker, PATHS.krakenOhlc);
        stopCoinbase(f);
        stopBitstamp(f);
      });
      try {
        await postRefresh(s.app);
        const body = await s.summary();
        // No venue fresh: the ones with data are used (as a single stale source always was) and the price is stale.
        const used = await expectPricesFrom(s, body, ['coinbase', 'bitstamp']);
        expect(body.metrics.price).toMatchObject({ source: 'composite', stale: true });
        expect(body.metrics.price.venues).toEqual([
          expect.objectContaining({ source: 'coinbase', stale: true, left_out: null, hours_used: used.coinbase }),
          expect.objectContaining({ source: 'kraken', stale: true, left_out: 'no_data', hours_used: 0 }),
          expect.objectContaining({ source: 'bitstamp', stale: true, left_out: null, hours_used: used.bitstamp }),
        ]);

        // Every venue down since the start: 503 before any data, then price null beside the sentiment.
        const empty = await bootApp({ REDIS_KEY_PREFIX: `${s.prefix}:empty`, ...s.fake.env({ price: VENUES.join(',') }), BACKFILL_HOURS: '4' });
        try {
          down(s.fake, PATHS.coinbaseTicker, PATHS.coinbaseCandles, PATHS.bitstampTicker, PATHS.bitstampOhlc);
          const before = await empty.inject({ method: 'GET', url: '/is-bitcoin-lit' });
          expect(before.statusCode).toBe(503);
          expect(before.headers['retry-after']).toBeDefined();
          expect((await postRefresh(empty)).statusCode).toBe(200);
          const after = (await empty.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json<Summary>();
          expect(after.hourly_average_of_averages.every((h) => h.price === null && typeof h.sentiment === 'number')).toBe(true);
          expect(after.price_direction).toBeNull();
          expect(after.metrics.price).toMatchObject({ source: 'composite', latest_sample_time: null, stale: true });
          expect(after.metrics.price.venues!.map((v) => v.left_out)).toEqual(['no_data', 'no_data', 'no_data']);
        } finally {
          await empty.close(); // its keys are under the scenario's prefix: stop() deletes them
        }
      } finally {
        await s.stop();
      }
    });
  });
});
