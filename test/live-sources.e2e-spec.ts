import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { RedisKeys } from '../src/redis/redis-keys.service.js';
import { SeriesRepository } from '../src/series/series.repository.js';
import type { MetricName } from '../src/sources/source.types.js';
import { bootApp, postRefresh } from './support/app.js';
import { fearGreedAt, FakeSources, hourlyCloseAt, liveData, PATHS, priceAt, sentimentAt } from './support/fake-sources.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MINUTE = 60_000;

interface SourceOutcome {
  source: string;
  ok: boolean;
  error: string | null;
  report: {
    stored: number;
    backfill: { from: string; to: string; stored: number; error: string | null } | null;
    hourlyBackfill?: { from: string; to: string; stored: number; error: string | null };
    series: Record<string, { stored: number; duplicates: number }>;
  } | null;
}

/** Every sample of a metric's series, read through the series store (the same on both backends). */
async function samplesOf(app: NestFastifyApplication, metric: MetricName) {
  const repository = app.get(SeriesRepository);
  const [def] = repository.defs(metric);
  return repository.range(def, { from: 0, to: Date.now() + DAY });
}

/** The hourly average the summary must give: the mean of the samples stored in that hour. */
function hourlyMean(samples: Array<{ timestamp: number; value: number }>, hourStart: number): number | null {
  const inHour = samples.filter((s) => s.timestamp >= hourStart && s.timestamp < hourStart + HOUR).map((s) => s.value);
  return inHour.length ? inHour.reduce((a, b) => a + b, 0) / inHour.length : null;
}

interface Live {
  fake: FakeSources;
  redis: Redis;
  app: NestFastifyApplication;
}

/** Loopback providers serving the 24 h before `now` (as `adjust` leaves them), and the app booted on them under `prefix`. */
async function startLive(prefix: string, now: number, env: (fake: FakeSources) => Record<string, string>, adjust?: (fake: FakeSources) => void): Promise<Live> {
  const redis = new Redis(REDIS_URL);
  const fake = await new FakeSources(liveData(now, 32)).start();
  adjust?.(fake);
  return { redis, fake, app: await bootApp({ REDIS_KEY_PREFIX: prefix, ...env(fake) }) };
}

async function stopLive(prefix: string, { app, fake, redis }: Partial<Live>): Promise<void> {
  await app?.close();
  await fake?.stop();
  if (redis) await deleteKeys(redis, prefix);
  redis?.disconnect();
}

describe('Live sources (e2e: coinbase + senticrypt-v2 by default, real Redis, loopback providers)', () => {
  const prefix = uniquePrefix('live');
  const now = Date.now();
  let fake: FakeSources;
  let redis: Redis;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    ({ fake, redis, app } = await startLive(prefix, now, (f) => f.env(), (f) => {
      // Closed candles only, so the count below is exact whenever the backfill runs (that the open
      // candle of the current minute is never stored is the provider specs' to check).
      f.data.coinbaseCandles = f.data.coinbaseCandles.filter((row) => (row[0] as number) * 1000 + MINUTE <= now);
    }));
  });
  afterAll(() => stopLive(prefix, { app, fake, redis }));

  it('backfills the last 24 h of price from 1-minute candles (the month before hourly) and the sentiment history, then polls, saying who it is', async () => {
    const res = await postRefresh(app);
    expect(res.statusCode).toBe(200);
    const body = res.json<{ stored: number; sources: SourceOutcome[] }>();
    const [coinbase, senticrypt] = ['coinbase', 'senticrypt-v2'].map((id) => body.sources.find((s) => s.source === id));
    expect(coinbase).toMatchObject({ ok: true, error: null });
    expect(senticrypt).toMatchObject({ ok: true, error: null });

    // Price: every 1-minute candle close from the top of the hour 24 h ago, the hours of that
    // day before it (hourly closes, so the daily compaction of that day is whole; the older days
    // of the month went straight into the compactions: see backfill-month.e2e-spec.ts), the ticker.
    const window = coinbase!.report!.backfill!;
    expect(window.error).toBeNull();
    const [from, to] = [Date.parse(window.from), Date.parse(window.to)];
    expect(from % HOUR).toBe(0);
    expect(from).toBe(Math.floor((to - DAY) / HOUR) * HOUR);
    const minutes: number[] = [];
    // Every closed minute the fake serves (it has none still open: see beforeAll).
    for (let t = from; t <= Math.floor(now / MINUTE) * MINUTE - MINUTE; t += MINUTE) minutes.push(t);
    const hours: number[] = [];
    for (let h = Math.floor(from / DAY) * DAY; h < from; h += HOUR) hours.push(h);
    const tickerTime = now - 1500;
    const price = await samplesOf(app, 'price');
    expect(price).toEqual(
      [
        ...hours.map((h) => ({ timestamp: h, value: hourlyCloseAt(h) })),
        ...minutes.map((t) => ({ timestamp: t, value: priceAt(t) })),
        { timestamp: tickerTime, value: Number(priceAt(tickerTime).toFixed(2)) },
      ].sort((a, b) => a.timestamp - b.timestamp),
    );
    expect(window.stored).toBe(minutes.length);
    expect(coinbase!.report!.hourlyBackfill).toMatchObject({ to: new Date(from - 1).toISOString(), error: null, stored: (from - Math.ceil((to - 720 * HOUR) / HOUR) * HOUR) / HOUR });
    expect(coinbase!.report!.stored).toBe(minutes.length + 1 + coinbase!.report!.hourlyBackfill!.stored);
    // The minutes at ≤ 299 a call (5 or 6 calls for 24-25 h), the month's hours at ≤ 299 a call (3).
    const calls = fake.calls(PATHS.coinbaseCandles);
    expect(calls.filter((c) => c.query.granularity === '60')).toHaveLength(Math.ceil((to - from) / MINUTE / 299));
    expect(calls.filter((c) => c.query.granularity === '3600')).toHaveLength(3);

    // Sentiment: one value per UTC day (00:00) from the day before the 30-day window on, up to
    // yesterday's: today's mean is not complete yet.
    const sentiment = await samplesOf(app, 'sentiment');
    const firstDay = Math.floor((now - 30 * DAY) / DAY) * DAY - DAY;
    const days: number[] = [];
    for (let d = firstDay; d < Math.floor(now / DAY) * DAY; d += DAY) days.push(d);
    expect(sentiment).toEqual(days.map((d) => ({ timestamp: d, value: sentimentAt(d) })));

    // Every provider call said who we are (Coinbase answers 400 to a call without User-Agent).
    expect(fake.requests.length).toBeGreaterThan(0);
    for (const r of fake.requests) expect(r.headers['user-agent']).toMatch(/^is-bitcoin-lit\/\S+ /);
  });

  it('answers about now: the last three hours, each metric with its source, unit, newest sample and freshness', async () => {
    const res = await app.inject({ method: 'GET', url: '/is-bitcoin-lit' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const price = await samplesOf(app, 'price');
    // The window ends at the app's clock (as_of), which may be in the hour after the test's `now`.
    const hourNow = Math.floor(Date.parse(body.as_of) / HOUR) * HOUR;
    const hours = [hourNow - 2 * HOUR, hourNow - HOUR, hourNow];
    expect(body.hourly_average_of_averages.map((h: { time: string }) => h.time)).toEqual(hours.map((h) => new Date(h).toISOString()));
    body.hourly_average_of_averages.forEach((h: { price: number; sentiment: number }, i: number) => {
      expect(h.price).toBeCloseTo(hourlyMean(price, hours[i])!, 8);
      // A daily index: the level in effect during the hour (the newest complete day's: yesterday's), not missing.
      expect(h.sentiment).toBe(sentimentAt(Math.floor(now / DAY) * DAY - DAY));
    });
    // The index's direction: yesterday's value against the day before's (the hours alone are flat).
    const yesterday = Math.floor(now / DAY) * DAY - DAY;
    const [before, last] = [sentimentAt(yesterday - DAY), sentimentAt(yesterday)];
    expect(body.sentiment_direction).toBe(last > before ? 'rising' : last < before ? 'falling' : 'flat');
    expect(Date.parse(body.as_of)).toBeGreaterThanOrEqual(now);
    expect(body.metrics).toEqual({
      price: { source: 'coinbase', unit: 'USD', cadence: 'tick', latest_sample_time: new Date(now - 1500).toISOString(), stale: false },
      sentiment: {
        source: 'senticrypt-v2',
        unit: 'score -1..1',
        cadence: 'daily',
        latest_sample_time: new Date(Math.floor(now / DAY) * DAY - DAY).toISOString(),
        stale: false,
      },
    });
  });

  it("GET /series/{metric} without a range ends at that metric's newest sample: the daily index is not cut off by price's ticks", async () => {
    const yesterday = Math.floor(now / DAY) * DAY - DAY;
    const res = await app.inject({ method: 'GET', url: '/series/sentiment' });
    expect(res.statusCode).toBe(200);
    const points = res.json<Array<{ time: string; value: number }>>();
    // The last 24 h before the index's newest day: that day, and the one before.
    expect(points.map((p) => p.time)).toEqual([yesterday - DAY, yesterday].map((t) => new Date(t).toISOString()));
    expect(points.at(-1)!.value).toBe(sentimentAt(yesterday));
  });

  it('polls again without backfilling or storing a sample twice', async () => {
    const before = { price: (await samplesOf(app, 'price')).length, sentiment: (await samplesOf(app, 'sentiment')).length };
    const candleCalls = fake.calls(PATHS.coinbaseCandles).length;
    const body = (await postRefresh(app)).json<{ stored: number; sources: SourceOutcome[] }>();
    expect(body.sources.every((s) => s.ok && s.report!.backfill === null)).toBe(true);
    // The ticker's trade and yesterday's index are stored already, today's is not complete: skipped, not sent.
    expect(body.stored).toBe(0);
    expect(fake.calls(PATHS.coinbaseCandles)).toHaveLength(candleCalls);
    expect({ price: (await samplesOf(app, 'price')).length, sentiment: (await samplesOf(app, 'sentiment')).length }).toEqual(before);

    // A new trade is one new sample.
    const trade = Date.now();
    fake.data.coinbaseTicker = { ...fake.data.coinbaseTicker, price: '70123.45', time: new Date(trade).toISOString() };
    const next = (await postRefresh(app)).json<{ stored: number }>();
    expect(next.stored).toBe(1);
    expect((await samplesOf(app, 'price')).at(-1)).toEqual({ timestamp: trade, value: 70123.45 });
  });

  it('refuses a trade dated years ahead: the history stays as it was and the next real trade is stored', async () => {
    // Stored, it would have trimmed every older sample (retention counts back from the newest)
    // and held back every later poll (only samples newer than the newest are sent).
    const before = await samplesOf(app, 'price');
    const real = fake.data.coinbaseTicker;
    fake.data.coinbaseTicker = { ...real, price: '99999', time: '2999-01-01T00:00:00Z' };
    const body = (await postRefresh(app)).json<{ sources: SourceOutcome[] }>();
    const coinbase = body.sources.find((s) => s.source === 'coinbase')!;
    expect(coinbase.ok).toBe(false);
    expect(coinbase.error).toMatch(/in the future/);
    expect(await samplesOf(app, 'price')).toEqual(before);

    const trade = Date.now();
    fake.data.coinbaseTicker = { ...real, price: '70200.5', time: new Date(trade).toISOString() };
    expect((await postRefresh(app)).json<{ stored: number }>().stored).toBe(1);
    const after = await samplesOf(app, 'price');
    expect(after).toHaveLength(before.length + 1);
    expect(after.at(-1)).toEqual({ timestamp: trade, value: 70200.5 });
  });

  it('refuses a tick far from the venue\'s previous price (PRICE_MAX_JUMP_PCT, 20 %): nothing stored, the next real one is', async () => {
    const before = await samplesOf(app, 'price');
    const previous = before.at(-1)!;
    expect(Date.now() - previous.timestamp).toBeLessThan(10 * 60_000); // fresh: a reference
    const real = fake.data.coinbaseTicker;
    fake.data.coinbaseTicker = { ...real, price: '999999998', time: new Date(previous.timestamp + 1000).toISOString() };
    const coinbase = (await postRefresh(app)).json<{ sources: SourceOutcome[] }>().sources.find((s) => s.source === 'coinbase')!;
    expect(coinbase.ok).toBe(false);
    expect(coinbase.error).toMatch(/more than 20 % from the venue's previous one \(PRICE_MAX_JUMP_PCT\)/);
    expect(await samplesOf(app, 'price')).toEqual(before);

    const trade = previous.timestamp + 2000;
    fake.data.coinbaseTicker = { ...real, price: String(previous.value * 1.01), time: new Date(trade).toISOString() };
    expect((await postRefresh(app)).json<{ stored: number }>().stored).toBe(1);
    expect((await samplesOf(app, 'price')).at(-1)).toEqual({ timestamp: trade, value: previous.value * 1.01 });
  });

  it('keeps serving price when the sentiment source is down, and says which one failed', async () => {
    fake.override(PATHS.senticryptV2, { status: 503, raw: 'upstream maintenance page' });
    try {
      const res = await postRefresh(app);
      expect(res.statusCode).toBe(200);
      const body = res.json<{ sources: SourceOutcome[] }>();
      const failed = body.sources.find((s) => s.source === 'senticrypt-v2')!;
      expect(failed).toMatchObject({ ok: false, report: null });
      expect(failed.error).toMatch(/503/);
      expect(failed.error).not.toMatch(/maintenance/);
      expect(body.sources.find((s) => s.source === 'coinbase')).toMatchObject({ ok: true });
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/source_runs_total\{source="senticrypt-v2",outcome="upstream_error"\} [1-9]/);
      expect(metrics).toMatch(/source_runs_total\{source="coinbase",outcome="success"\} [1-9]/);
      const ready = (await app.inject({ method: 'GET', url: '/health/ready' })).json();
      expect(Object.keys(ready.info.ingest.sources).sort()).toEqual(['coinbase', 'senticrypt-v2']);
    } finally {
      fake.clearOverrides();
    }
  });

  it("stays off a venue that answered with a long Retry-After, on every instance, until it has passed", async () => {
    const keys = app.get(RedisKeys);
    fake.override(PATHS.coinbaseTicker, { status: 429, headers: { 'retry-after': '3600' }, times: 1 });
    let other: NestFastifyApplication | undefined;
    try {
      const before = fake.calls(PATHS.coinbaseTicker).length;
      const first = (await postRefresh(app)).json<{ sources: SourceOutcome[] }>();
      const failed = first.sources.find((s) => s.source === 'coinbase')!;
      expect(failed).toMatchObject({ ok: false, report: null });
      expect(failed.error).toMatch(/^upstream answered HTTP 429; not retried: Retry-After 3600 s .*; no call before \S+Z$/);
      const until = Number(await redis.get(keys.ingestNotBefore('coinbase')));
      expect(until).toBeGreaterThan(Date.now() + 3_590_000);
      expect(await redis.pttl(keys.ingestNotBefore('coinbase'))).toBeGreaterThan(3_590_000);

      // The next run here and a run of another instance sharing the Redis: skipped, no call.
      other = await bootApp({ REDIS_KEY_PREFIX: prefix, ...fake.env() });
      for (const instance of [app, other]) {
        const body = (await postRefresh(instance)).json<{ sources: SourceOutcome[] }>();
        expect(body.sources.find((s) => s.source === 'coinbase')).toEqual({
          source: 'coinbase',
          ok: false,
          error: `upstream asked to wait until ${new Date(until).toISOString()}; skipped`,
          report: null,
        });
        expect(body.sources.find((s) => s.source === 'senticrypt-v2')).toMatchObject({ ok: true });
      }
      expect(fake.calls(PATHS.coinbaseTicker).length).toBe(before + 1);
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/source_runs_total\{source="coinbase",outcome="skipped"\} 1/);

      // Once it has passed (the key expires with it), the venue is called again.
      await redis.del(keys.ingestNotBefore('coinbase'));
      expect((await postRefresh(app)).json<{ sources: SourceOutcome[] }>().sources.find((s) => s.source === 'coinbase')).toMatchObject({ ok: true });
    } finally {
      await other?.close();
      fake.clearOverrides();
      await redis.del(keys.ingestNotBefore('coinbase'));
    }
  });

  it('is a 502 naming each source when every source fails', async () => {
    fake.override(PATHS.senticryptV2, { status: 500 });
    fake.override(PATHS.coinbaseTicker, { status: 404 });
    try {
      const res = await postRefresh(app);
      expect(res.statusCode).toBe(502);
      expect(res.json().message).toMatch(/coinbase: .*404.*; senticrypt-v2: .*500/);
    } finally {
      fake.clearOverrides();
    }
  });

  it('leaves no setting behind for the next app: one booted with only SENTIMENT_API_URL is on v1 for both (upgrade path)', async () => {
    const upgraded = await bootApp({ REDIS_KEY_PREFIX: `${prefix}:v1`, SENTIMENT_API_URL: `${fake.origin}${PATHS.senticryptV1}` });
    try {
      const body = (await postRefresh(upgraded)).json<{ sources: SourceOutcome[] }>();
      expect(body.sources.map((s) => s.source)).toEqual(['senticrypt-v1']);
      expect(process.env.PRICE_SOURCE).toBeUndefined();
    } finally {
      await upgraded.close();
      await deleteKeys(redis, `${prefix}:v1`);
    }
  });

  it('refuses a redirect to another origin: a failed run that never fetches the other page nor quotes it', async () => {
    let hits = 0;
    const internal: Server = createServer((_req, res) => {
      hits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"secret":"internal admin page"}');
    });
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
    fake.override(PATHS.coinbaseTicker, { redirect: `http://127.0.0.1:${(internal.address() as AddressInfo).port}/internal/admin` });
    try {
      const body = (await postRefresh(app)).json<{ sources: SourceOutcome[] }>();
      const coinbase = body.sources.find((s) => s.source === 'coinbase')!;
      expect(coinbase.ok).toBe(false);
      expect(coinbase.error).toMatch(/redirect/i);
      expect(coinbase.error).not.toMatch(/secret|admin page/);
      expect(hits).toBe(0);
    } finally {
      fake.clearOverrides();
      internal.closeAllConnections();
      await new Promise<void>((resolve) => internal.close(() => resolve()));
    }
  });
});

describe('Live sources: kraken + fear-greed, freshness flags (e2e)', () => {
  const prefix = uniquePrefix('live-kraken');
  const now = Date.now();
  let fake: FakeSources;
  let redis: Redis;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    ({ fake, redis, app } = await startLive(prefix, now, (f) => ({ PRICE_STALE_AFTER_MS: '1000', ...f.env({ price: 'kraken', sentiment: 'fear-greed' }) })));
  });
  afterAll(() => stopLive(prefix, { app, fake, redis }));

  it('backfills the minutes Kraken keeps (12 h, from a whole hour), stores the 0..100 index under its own key, and flags what is stale', async () => {
    const body = (await postRefresh(app)).json<{ sources: SourceOutcome[] }>();
    const kraken = body.sources.find((s) => s.source === 'kraken')!;
    expect(kraken.ok).toBe(true);
    const window = kraken.report!.backfill!;
    const [from, to] = [Date.parse(window.from), Date.parse(window.to)];
    expect(from % HOUR).toBe(0);
    expect(from).toBe(Math.ceil((to - 12 * HOUR + 2 * MINUTE) / HOUR) * HOUR);
    expect(kraken.report!.hourlyBackfill).toMatchObject({ to: new Date(from - 1).toISOString(), error: null });
    const price = await samplesOf(app, 'price');
    // No minute older than the window (hourly closes before it, from its day's start), and none that was still open.
    expect(price.filter((s) => s.timestamp < from).every((s) => s.timestamp % HOUR === 0 && s.timestamp >= Math.floor(from / DAY) * DAY)).toBe(true);
    expect(price.filter((s) => s.timestamp >= Math.floor(now / MINUTE) * MINUTE && s.timestamp !== price.at(-1)!.timestamp)).toEqual([]);

    const summary = (await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
    for (const h of summary.hourly_average_of_averages) {
      expect(h.sentiment).toBe(fearGreedAt(Math.floor(Date.parse(h.time) / DAY) * DAY));
    }
    // Kraken's ticker has no time: the sample is the poll's, so fresh; with a 1 s limit it is
    // stale by the time a later summary is computed, which the flag must say.
    expect(summary.metrics.sentiment).toMatchObject({ source: 'fear-greed', unit: 'index 0..100', stale: false });
    await new Promise((r) => setTimeout(r, 1100));
    await redis.unlink(`${prefix}:cache`);
    const later = (await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
    expect(later.metrics.price).toMatchObject({ source: 'kraken', stale: true });
    expect(later.metrics.sentiment.stale).toBe(false);

    const keys = (await app.inject({ method: 'GET', url: '/series' })).json<Array<{ key: string; source: string; unit: string }>>();
    expect(keys.find((s) => s.key === `${prefix}:sentiment:fear-greed`)).toMatchObject({ source: 'fear-greed', unit: 'index 0..100' });
    expect(keys.find((s) => s.key === `${prefix}:price:kraken`)).toMatchObject({ source: 'kraken', unit: 'USD' });
  });

  it('serves the one metric that has data (documented shape) and a 503 only when neither has any', async () => {
    const empty = await bootApp({ REDIS_KEY_PREFIX: `${prefix}:empty`, ...fake.env({ price: 'kraken', sentiment: 'fear-greed' }) });
    try {
      expect((await empty.inject({ method: 'GET', url: '/is-bitcoin-lit' })).statusCode).toBe(503);
      fake.override(PATHS.fearGreed, { status: 451 });
      expect((await postRefresh(empty)).statusCode).toBe(200);
      const body = (await empty.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
      expect(body.hourly_average_of_averages.length).toBeGreaterThan(0);
      expect(body.hourly_average_of_averages.every((h: { price: number | null; sentiment: null }) => typeof h.price === 'number' && h.sentiment === null)).toBe(true);
      expect(body.sentiment_direction).toBeNull();
      expect(body.price_direction).toMatch(/^(rising|falling|flat)$/);
      expect(body.metrics.sentiment).toEqual({ source: 'fear-greed', unit: 'index 0..100', cadence: 'daily', latest_sample_time: null, stale: true });
    } finally {
      fake.clearOverrides();
      await empty.close();
      await deleteKeys(redis, `${prefix}:empty`);
    }
  });
});
