import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { RedisClient } from '../redis/redis.types.js';
import { SeriesDef } from '../series/series.catalog.js';
import { PendingBackfill, PendingHourlyBackfill, SeriesRepository } from '../series/series.repository.js';
import { PayloadError, PermanentUpstreamError, TransientUpstreamError, UpstreamPausedError } from '../sources/source.errors.js';
import { SourceRegistry } from '../sources/source.registry.js';
import { MetricName, SourceBatch, SourceId, SourceProvider } from '../sources/source.types.js';
import { AddReport } from '../timeseries/timeseries.service.js';
import { Sample } from '../timeseries/timeseries.types.js';
import { IngestEvents } from './ingest.events.js';
import { AllSourcesFailedError, SentimentIngestService } from './sentiment-ingest.service.js';

const H = 3_600_000;
const DAY = 24 * H;
const NOW = Date.UTC(2026, 11, 2, 7, 12, 0);

const settings: Partial<Record<keyof Env, unknown>> = { BACKFILL_HOURS: 24, INGEST_INTERVAL_MS: 30_000, INGEST_MAX_AHEAD_MS: 300_000 };
const config = { get: (k: keyof Env) => settings[k] } as unknown as ConfigService<Env, true>;

const batchOf = (metric: MetricName, samples: Sample[]): SourceBatch => ({
  samples: { [metric]: samples },
  fetched: samples.length,
  skipped: 0,
  invalid: 0,
  invalidReasons: [],
  attempts: 1,
});

function provider(id: SourceId, metric: MetricName, cadence: 'tick' | 'daily', withBackfill = true) {
  return {
    id,
    metrics: [{ metric, unit: 'u', cadence }],
    poll: jest.fn(async (): Promise<SourceBatch> => batchOf(metric, [{ timestamp: NOW - 1000, value: 1 }])),
    backfill: withBackfill ? jest.fn(async (from: number, to: number): Promise<SourceBatch> => batchOf(metric, [{ timestamp: from, value: 2 }, { timestamp: to, value: 3 }])) : undefined,
  };
}

/** A series store in memory (the real one is covered by the e2e specs). */
function memorySeries(defs: SeriesDef[]) {
  const data = new Map<MetricName, Sample[]>();
  const pending = new Map<SourceId, PendingBackfill>();
  const pendingHourly = new Map<SourceId, PendingHourlyBackfill>();
  const notBefore = new Map<SourceId, number>();
  const added: Array<{ metric: MetricName; samples: Sample[] }> = [];
  const hourly: Array<{ metric: MetricName; samples: Sample[]; fineFrom: number }> = [];
  const store = {
    catalog: defs,
    ofSource: (source: SourceId) => defs.filter((d) => d.source === source),
    latest: async ({ metric }: SeriesDef) => data.get(metric)?.at(-1) ?? null,
    ensureStorage: async () => undefined,
    add: async ({ metric }: SeriesDef, samples: Sample[]): Promise<AddReport> => {
      added.push({ metric, samples });
      const all = [...(data.get(metric) ?? []), ...samples].sort((a, b) => a.timestamp - b.timestamp);
      data.set(metric, all);
      return { stored: samples.length, duplicates: 0, rejected: 0, errors: [] };
    },
    addHourly: async ({ metric }: SeriesDef, samples: Sample[], fineFrom: number): Promise<AddReport> => {
      hourly.push({ metric, samples, fineFrom });
      return { stored: samples.length, duplicates: 0, rejected: 0, errors: [] };
    },
    pendingHourlyBackfill: async (source: SourceId) => pendingHourly.get(source) ?? null,
    setPendingHourlyBackfill: async (source: SourceId, p: PendingHourlyBackfill) => void pendingHourly.set(source, p),
    clearPendingHourlyBackfill: async (source: SourceId) => void pendingHourly.delete(source),
    recordSuccess: async () => undefined,
    pendingBackfill: async (source: SourceId) => pending.get(source) ?? null,
    setPendingBackfill: async (source: SourceId, p: PendingBackfill) => void pending.set(source, p),
    clearPendingBackfill: async (source: SourceId) => void pending.delete(source),
    upstreamNotBefore: async (source: SourceId) => ((notBefore.get(source) ?? 0) > Date.now() ? notBefore.get(source)! : null),
    setUpstreamNotBefore: async (source: SourceId, until: number) => void notBefore.set(source, until),
  };
  return { store, data, pending, pendingHourly, notBefore, added, hourly };
}

const def = (metric: MetricName, source: SourceId, cadence: 'tick' | 'daily'): SeriesDef =>
  ({ metric, source, cadence, unit: 'u', key: `${metric}:${source}`, retentionMs: 0, labels: {} });

function setup(providers: ReturnType<typeof provider>[], defs: SeriesDef[]) {
  const series = memorySeries(defs);
  const registry = { active: () => providers as unknown as SourceProvider[] } as unknown as SourceRegistry;
  const redis = { status: 'ready', on: () => undefined } as unknown as RedisClient;
  const service = new SentimentIngestService(
    registry,
    series.store as unknown as SeriesRepository,
    new IngestEvents(),
    new MetricsService(redis, config),
    redis,
    config,
  );
  return { service, ...series };
}

describe('SentimentIngestService', () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: NOW, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    for (const level of ['log', 'warn', 'error'] as const) jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined);
  });
  afterEach(() => jest.useRealTimers());

  it('backfills the last 24 h of an empty tick series, then stores the poll', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    const report = await t.service.run('coinbase');
    expect(coinbase.backfill).toHaveBeenCalledWith(NOW - DAY, NOW);
    expect(coinbase.poll).toHaveBeenCalledWith({ since: null });
    expect(report.backfill).toMatchObject({ from: new Date(NOW - DAY).toISOString(), to: new Date(NOW).toISOString(), stored: 2, error: null });
    expect(report.stored).toBe(3);
  });

  it('never stores a sample dated past INGEST_MAX_AHEAD_MS: counted invalid, and a poll of nothing else fails the run', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    const ahead = (ms: number) => ({ timestamp: NOW + ms, value: 9 });
    coinbase.backfill!.mockResolvedValueOnce(batchOf('price', [{ timestamp: NOW - DAY, value: 2 }, ahead(300_000), ahead(300_001)]));
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    const report = await t.service.run('coinbase');
    expect(report.backfill).toMatchObject({ stored: 2, invalid: 1 });
    expect(report.invalidReasons).toEqual(["1 record(s) dated in the future (more than 300000 ms ahead of this server's clock, INGEST_MAX_AHEAD_MS)"]);
    expect(t.data.get('price')!.map((s) => s.timestamp)).toEqual([NOW - DAY, NOW - 1000, NOW + 300_000]);

    coinbase.poll.mockResolvedValueOnce(batchOf('price', [ahead(DAY * 365 * 900)]));
    const failed = await t.service.run('coinbase').catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(PayloadError);
    expect((failed as PayloadError).source).toBe('coinbase');
    expect((failed as Error).message).toMatch(/mostly invalid: 1 of 1 records rejected \(1 record\(s\) dated in the future/);
    expect(t.data.get('price')).toHaveLength(3);
  });

  it('says once when a series already holds a sample dated ahead (stored before the check): polls store nothing until then', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    t.data.set('price', [{ timestamp: Date.UTC(2999, 0, 1), value: 1 }]);
    const warn = jest.spyOn(Logger.prototype, 'warn');
    warn.mockClear(); // the spy outlives each test
    await t.service.run('coinbase');
    await t.service.run('coinbase');
    const said = warn.mock.calls.map(([m]) => String(m)).filter((m) => m.includes('ahead of this server'));
    expect(said).toEqual([
      "coinbase: the newest price sample is dated 2999-01-01T00:00:00.000Z, ahead of this server's clock: polls store nothing older, so nothing until then; remove the samples dated ahead if they are wrong",
    ]);
  });

  it('gives a daily index whole days from the day before the window', async () => {
    const fng = provider('fear-greed', 'sentiment', 'daily');
    const t = setup([fng], [def('sentiment', 'fear-greed', 'daily')]);
    await t.service.run('fear-greed');
    const from = Math.floor((NOW - DAY) / DAY) * DAY - DAY;
    expect(fng.backfill).toHaveBeenCalledWith(from, NOW);
  });

  it('fills only the gap after the newest sample, and nothing when there is no gap', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    t.data.set('price', [{ timestamp: NOW - 2 * H, value: 1 }]);
    await t.service.run('coinbase');
    expect(coinbase.backfill).toHaveBeenLastCalledWith(NOW - 2 * H + 1, NOW);
    coinbase.backfill!.mockClear();
    t.data.set('price', [{ timestamp: NOW - 60_000, value: 1 }]);
    await t.service.run('coinbase');
    expect(coinbase.backfill).not.toHaveBeenCalled();
  });

  it('stops at what the provider reaches (Kraken: 12 h)', async () => {
    const kraken = { ...provider('kraken', 'price', 'tick'), backfillReachMs: 12 * H };
    const t = setup([kraken], [def('price', 'kraken', 'tick')]);
    await t.service.run('kraken');
    expect(kraken.backfill).toHaveBeenCalledWith(NOW - 12 * H, NOW);
  });

  it('stores the poll when the backfill fails on the network, and retries the backfill (clamped) on the next run', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    coinbase.backfill!.mockRejectedValueOnce(Object.assign(new TransientUpstreamError('upstream unreachable (ECONNRESET)'), { attempts: 3 }));
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    const first = await t.service.run('coinbase');
    expect(first.backfill).toMatchObject({ error: 'upstream unreachable (ECONNRESET)', attempts: 3, stored: 0 });
    expect(first.stored).toBe(1);
    expect(t.pending.get('coinbase')).toEqual({ from: NOW - DAY, failures: 1, retryAt: NOW + 15_000 });

    // Two days later the poll has kept "newest" fresh; the retry still happens, within 24 h.
    jest.setSystemTime(NOW + 2 * DAY);
    t.data.set('price', [{ timestamp: NOW + 2 * DAY - 1000, value: 1 }]);
    const second = await t.service.run('coinbase');
    expect(coinbase.backfill).toHaveBeenLastCalledWith(NOW + DAY, NOW + 2 * DAY);
    expect(second.backfill?.error).toBeNull();
    expect(t.pending.has('coinbase')).toBe(false);
  });

  // Retried on every run, a backfill broken for good (a candles endpoint that changed shape while
  // the ticker still works) cost its calls and a warning every 30 s for BACKFILL_HOURS.
  it('spaces out the retries of a backfill that keeps failing (1, 2, 4, 8… intervals apart, at most an hour), unless an operator asks; a success ends them', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    const calledAt: number[] = [];
    coinbase.backfill!.mockImplementation(async () => {
      calledAt.push((Date.now() - NOW) / 30_000);
      throw new PayloadError('upstream payload is not JSON (44 characters)');
    });
    // A poll every 30 s for 8 h; each stores a newer sample, as the live poll does.
    for (let tick = 0; tick <= 960; tick++) {
      jest.setSystemTime(NOW + tick * 30_000);
      await t.service.run('coinbase');
    }
    const gaps = calledAt.slice(1).map((at, i) => at - calledAt[i]);
    expect(gaps).toEqual([1, 2, 4, 8, 16, 32, 64, 120, 120, 120, 120, 120, 120, 120].slice(0, gaps.length));
    expect(calledAt.length).toBe(14); // of 961 runs
    expect(t.pending.get('coinbase')).toMatchObject({ failures: 14, retryAt: NOW + (calledAt.at(-1)! * 30 + 3600 - 15) * 1000 });
    // An operator's POST /refresh retries it at once, due or not; a success ends the retries.
    jest.setSystemTime(t.pending.get('coinbase')!.retryAt - 60_000);
    expect((await t.service.run('coinbase')).backfill).toBeNull();
    coinbase.backfill!.mockResolvedValueOnce(batchOf('price', [{ timestamp: NOW, value: 2 }]));
    expect((await t.service.run('coinbase', { retryNow: true })).backfill?.error).toBeNull();
    expect(t.pending.has('coinbase')).toBe(false);
  });

  it('dates a retry in whole milliseconds, whatever INGEST_INTERVAL_MS (half an odd one is not)', async () => {
    settings.INGEST_INTERVAL_MS = 15_001;
    try {
      const coinbase = provider('coinbase', 'price', 'tick');
      coinbase.backfill!.mockRejectedValueOnce(new PayloadError('upstream payload is not JSON (44 characters)'));
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      await t.service.run('coinbase');
      expect(t.pending.get('coinbase')).toEqual({ from: NOW - DAY, failures: 1, retryAt: NOW + 7_501 });
    } finally {
      settings.INGEST_INTERVAL_MS = 30_000;
    }
  });

  it('gives up a backfill that failed for good (4xx), and says so', async () => {
    const err = new PermanentUpstreamError('upstream answered HTTP 404');
    const coinbase = provider('coinbase', 'price', 'tick');
    coinbase.backfill!.mockRejectedValueOnce(err);
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    const report = await t.service.run('coinbase');
    expect(report.backfill?.error).toBe(err.message);
    expect(t.pending.size).toBe(0);
  });

  // A 200 that is no JSON is mostly a CDN's challenge or a maintenance page; given up, the first
  // backfill's hours were lost for good (the poll kept the series fresh, so no gap was seen).
  it('retries a backfill that got garbage on the next run', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    coinbase.backfill!.mockRejectedValueOnce(new PayloadError('upstream payload is not JSON (44 characters)'));
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    const first = await t.service.run('coinbase');
    expect(first.backfill?.error).toBe('upstream payload is not JSON (44 characters)');
    expect(t.pending.get('coinbase')).toEqual({ from: NOW - DAY, failures: 1, retryAt: NOW + 15_000 });
    t.data.set('price', [{ timestamp: NOW - 1000, value: 1 }]);
    jest.setSystemTime(NOW + 30_000);
    const second = await t.service.run('coinbase');
    expect(coinbase.backfill).toHaveBeenCalledTimes(2);
    expect(second.backfill?.error).toBeNull();
    expect(t.pending.has('coinbase')).toBe(false);
  });

  it('writes nothing when the poll fails, not even the backfill it fetched', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    coinbase.poll.mockRejectedValueOnce(new TransientUpstreamError('upstream answered HTTP 503'));
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    await expect(t.service.run('coinbase')).rejects.toThrow('HTTP 503');
    expect(t.added).toEqual([]);
  });

  describe("an upstream's Retry-After the HTTP client did not wait out", () => {
    const rateLimited = (retryAfterMs: number) => new TransientUpstreamError('upstream answered HTTP 429', { retryAfterMs });

    it('skips the source, without calling it, until then: scheduled runs and POST /refresh alike, said in the outcome and metrics', async () => {
      const coinbase = provider('coinbase', 'price', 'tick', false);
      coinbase.poll.mockRejectedValueOnce(rateLimited(H));
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      const at = new Date(NOW + H).toISOString();
      await expect(t.service.run('coinbase')).rejects.toThrow(`upstream answered HTTP 429; no call before ${at}`);
      expect(t.notBefore.get('coinbase')).toBe(NOW + H);

      jest.setSystemTime(NOW + H - 1);
      const skipped = await t.service.run('coinbase').catch((e: unknown) => e);
      expect(skipped).toBeInstanceOf(UpstreamPausedError);
      expect((skipped as Error).message).toBe(`upstream asked to wait until ${at}; skipped`);
      await expect(t.service.runAll({ full: true })).rejects.toThrow(`upstream asked to wait until ${at}; skipped`);
      expect(coinbase.poll).toHaveBeenCalledTimes(1);
      expect(jest.spyOn(Logger.prototype, 'warn')).toHaveBeenCalledWith(`coinbase: upstream asked to wait until ${at}; skipped`);
      const metrics = await (t.service as unknown as { metrics: MetricsService }).metrics.registry.metrics();
      expect(metrics).toContain('source_runs_total{source="coinbase",outcome="skipped"} 2');

      jest.setSystemTime(NOW + H);
      await t.service.run('coinbase');
      expect(coinbase.poll).toHaveBeenCalledTimes(2);
    });

    it('is remembered when only the backfill got it (the poll is stored), and never for more than 24 h', async () => {
      const coinbase = provider('coinbase', 'price', 'tick');
      coinbase.backfill!.mockRejectedValueOnce(rateLimited(3 * DAY));
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      const report = await t.service.run('coinbase');
      expect(report.stored).toBe(1);
      expect(report.backfill?.error).toBe(`upstream answered HTTP 429; no call before ${new Date(NOW + DAY).toISOString()}`);
      expect(t.notBefore.get('coinbase')).toBe(NOW + DAY);
    });

    it('is not a pause without a Retry-After (a plain 503 is retried on the next tick)', async () => {
      const coinbase = provider('coinbase', 'price', 'tick', false);
      coinbase.poll.mockRejectedValueOnce(new TransientUpstreamError('upstream answered HTTP 503'));
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      await expect(t.service.run('coinbase')).rejects.toThrow(/^upstream answered HTTP 503$/);
      await t.service.run('coinbase');
      expect(t.notBefore.size).toBe(0);
    });
  });

  it('a backfill failing on Redis (not the upstream) fails the run', async () => {
    const coinbase = provider('coinbase', 'price', 'tick');
    coinbase.backfill!.mockRejectedValueOnce(new Error('Connection is closed.'));
    const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
    await expect(t.service.run('coinbase')).rejects.toThrow('Connection is closed.');
  });

  describe('a month on the first start (BACKFILL_HOURS=720)', () => {
    beforeEach(() => void (settings.BACKFILL_HOURS = 720));
    afterEach(() => void (settings.BACKFILL_HOURS = 24));
    const venue = (id: SourceId, reachMs?: number) => ({
      ...provider(id, 'price', 'tick'),
      backfillHourly: jest.fn(async (from: number, to: number): Promise<SourceBatch> => batchOf('price', [{ timestamp: Math.ceil(from / H) * H, value: 4 }, { timestamp: Math.floor(to / H) * H, value: 5 }])),
      ...(reachMs === undefined ? {} : { backfillReachMs: reachMs, hourlyReachMs: 720 * H }),
    });

    it('fetches the last 24 h by the minute from the top of the hour, and the month before it by the hour', async () => {
      const coinbase = venue('coinbase');
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      const report = await t.service.run('coinbase');
      const fineFrom = Date.UTC(2026, 11, 1, 7); // the top of the hour 24 h before 07:12
      expect(coinbase.backfill).toHaveBeenCalledWith(fineFrom, NOW);
      expect(coinbase.backfillHourly).toHaveBeenCalledWith(NOW - 720 * H, fineFrom - 1);
      expect(t.hourly).toEqual([{ metric: 'price', samples: [{ timestamp: Math.ceil((NOW - 720 * H) / H) * H, value: 4 }, { timestamp: fineFrom - H, value: 5 }], fineFrom }]);
      expect(report.hourlyBackfill).toMatchObject({ from: new Date(NOW - 720 * H).toISOString(), to: new Date(fineFrom - 1).toISOString(), stored: 2, error: null });
      expect(report.stored).toBe(2 + 2 + 1);
    });

    it('a Retry-After on the hours keeps the minutes from calling the venue in the same run; both are retried later', async () => {
      const coinbase = venue('coinbase');
      coinbase.backfillHourly.mockRejectedValueOnce(new TransientUpstreamError('upstream answered HTTP 429', { retryAfterMs: H }));
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      const report = await t.service.run('coinbase');
      expect(coinbase.backfill).not.toHaveBeenCalled();
      expect(report.backfill?.error).toBe(`upstream asked to wait until ${new Date(NOW + H).toISOString()}; skipped`);
      expect(t.pending.get('coinbase')).toBeDefined();
    });

    it("starts the minutes at the first whole hour the venue still holds (Kraken's 12 h)", async () => {
      const kraken = venue('kraken', 12 * H);
      const t = setup([kraken], [def('price', 'kraken', 'tick')]);
      await t.service.run('kraken');
      const fineFrom = Date.UTC(2026, 11, 1, 20); // 19:12 + 2 min of margin, up to the hour
      expect(kraken.backfill).toHaveBeenCalledWith(fineFrom, NOW);
      expect(kraken.backfillHourly).toHaveBeenCalledWith(NOW - 720 * H, fineFrom - 1);
    });

    it('never splits a gap or a daily source: only an empty tick series gets the hours', async () => {
      const coinbase = venue('coinbase');
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      t.data.set('price', [{ timestamp: NOW - 3 * DAY, value: 1 }]);
      await t.service.run('coinbase');
      expect(coinbase.backfillHourly).not.toHaveBeenCalled();
      expect(coinbase.backfill).toHaveBeenCalledWith(NOW - 3 * DAY + 1, NOW);

      const daily = { ...provider('fear-greed', 'sentiment', 'daily'), backfillHourly: jest.fn() };
      const d = setup([daily], [def('sentiment', 'fear-greed', 'daily')]);
      await d.service.run('fear-greed');
      expect(daily.backfillHourly).not.toHaveBeenCalled();
    });

    it('retries an hourly part that failed on the network on the next run, up to the same boundary, and only it', async () => {
      const coinbase = venue('coinbase');
      coinbase.backfillHourly.mockRejectedValueOnce(Object.assign(new TransientUpstreamError('upstream answered HTTP 503'), { attempts: 3 }));
      const t = setup([coinbase], [def('price', 'coinbase', 'tick')]);
      const first = await t.service.run('coinbase');
      const fineFrom = Date.UTC(2026, 11, 1, 7);
      expect(first.hourlyBackfill).toMatchObject({ error: 'upstream answered HTTP 503', stored: 0 });
      expect(first.backfill).toMatchObject({ error: null, stored: 2 });
      expect(t.pendingHourly.get('coinbase')).toEqual({ from: NOW - 720 * H, until: fineFrom, failures: 1, retryAt: NOW + 15_000 });

      jest.setSystemTime(NOW + 30_000);
      coinbase.backfill!.mockClear();
      const second = await t.service.run('coinbase');
      expect(coinbase.backfillHourly).toHaveBeenLastCalledWith(NOW + 30_000 - 720 * H, fineFrom - 1);
      expect(coinbase.backfill).not.toHaveBeenCalled();
      expect(second.hourlyBackfill).toMatchObject({ error: null, stored: 2 });
      expect(t.hourly.at(-1)?.fineFrom).toBe(fineFrom);
      expect(t.pendingHourly.size).toBe(0);
      expect((await t.service.run('coinbase')).hourlyBackfill).toBeUndefined();
    });
  });

  describe('POST /refresh over several sources', () => {
    const both = () => {
      const coinbase = provider('coinbase', 'price', 'tick', false);
      const v2 = provider('senticrypt-v2', 'sentiment', 'daily', false);
      const t = setup([coinbase, v2], [def('price', 'coinbase', 'tick'), def('sentiment', 'senticrypt-v2', 'daily')]);
      return { coinbase, v2, t };
    };

    it('reports a failed source without its internals and keeps the other', async () => {
      const { v2, t } = both();
      v2.poll.mockRejectedValueOnce(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'));
      const report = await t.service.runAll();
      expect(report.sources).toEqual([
        expect.objectContaining({ source: 'coinbase', ok: true }),
        { source: 'senticrypt-v2', ok: false, error: 'internal error (see the service log)', report: null },
      ]);
      expect(report.stored).toBe(1);
    });

    it('names each upstream when all fail (a 502), even one whose network error reads like a Redis one', async () => {
      const { coinbase, v2, t } = both();
      coinbase.poll.mockRejectedValueOnce(new TransientUpstreamError('upstream unreachable (ECONNREFUSED)'));
      v2.poll.mockRejectedValueOnce(new PermanentUpstreamError('upstream answered HTTP 451'));
      const err = await t.service.runAll().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AllSourcesFailedError);
      expect((err as Error).message).toBe('coinbase: upstream unreachable (ECONNREFUSED); senticrypt-v2: upstream answered HTTP 451');
    });

    it('lets a bug (a 500) or Redis (a 503) through when all fail', async () => {
      const bug = both();
      bug.coinbase.poll.mockRejectedValueOnce(new TypeError('x is undefined'));
      bug.v2.poll.mockRejectedValueOnce(new PermanentUpstreamError('upstream answered HTTP 404'));
      await expect(bug.t.service.runAll()).rejects.toThrow(TypeError);

      const redis = both();
      redis.coinbase.poll.mockRejectedValueOnce(new Error('Command timed out'));
      redis.v2.poll.mockRejectedValueOnce(new PermanentUpstreamError('upstream answered HTTP 404'));
      await expect(redis.t.service.runAll()).rejects.toThrow('Command timed out');
    });
  });
});
