import { ConfigService } from '@nestjs/config';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { bucketAggregates, COMPLETE_FROM_LABEL, CompactionService, SETTLE_AFTER_LABEL } from './compaction.service.js';
import type { SeriesDef } from './series.catalog.js';

describe('CompactionService.coverage', () => {
  const calls: string[] = [];
  const timeseries = {
    latest: async (key: string) => (calls.push(`latest ${key}`), { timestamp: 1_625_680_000_000, value: 1 }),
    info: async (key: string) => (calls.push(`info ${key}`), { labels: { [COMPLETE_FROM_LABEL]: '0' }, retentionMs: 0, lastTimestamp: 0 }),
  } as unknown as TimeseriesService;
  const keys = { compaction: (k: string, a: string, t: string) => `${k}:${a}:${t}` } as unknown as RedisKeys;
  const price = { key: 'price' } as SeriesDef;
  // Retentions 0, the 5-minute tier on.
  const config = { get: (name: string) => (name === 'TIMESERIES_5MIN_TIER' ? true : 0) } as unknown as ConfigService<never, true>;
  const service = new CompactionService(timeseries, keys, config);

  beforeEach(() => (calls.length = 0));

  it('asks Redis nothing when no tier divides the bucket (30 s, 7 min)', async () => {
    expect(await service.coverage(price, ['sum', 'count'], 30_000)).toEqual([]);
    expect(await service.coverage(price, ['sum', 'count'], 7 * 60_000)).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('asks only about the tiers that divide the bucket', async () => {
    const tiers = await service.coverage(price, ['sum', 'count'], 3_600_000);
    expect(tiers.map((t) => t.bucketMs)).toEqual([3_600_000]);
    expect(calls).toEqual(['latest price', 'info price:sum:1h', 'info price:count:1h']);
    expect((await service.coverage(price, ['max'], 86_400_000)).map((t) => t.bucketMs)).toEqual([3_600_000, 86_400_000]);
  });

  it('5 min buckets and their multiples that no coarser tier fits (5m, 15m, 30m, 90m) ask about the 5 min tier alone', async () => {
    for (const minutes of [5, 15, 30, 90]) {
      calls.length = 0;
      expect((await service.coverage(price, ['min'], minutes * 60_000)).map((t) => t.bucketMs)).toEqual([300_000]);
      expect(calls).toEqual(['latest price', 'info price:min:5m']);
    }
  });

  it('hour multiples stay on the hourly and daily tiers: the 5 min tier never answers their edges', async () => {
    for (const bucketMs of [3_600_000, 3 * 3_600_000, 86_400_000]) {
      expect((await service.coverage(price, ['min'], bucketMs)).map((t) => t.bucketMs)).not.toContain(300_000);
    }
  });
});

describe('CompactionService: a compaction still to settle (rule created over stored data)', () => {
  const H = 3_600_000;
  const T = 1_625_680_800_000; // an hour boundary
  const created = T + 10 * 60_000; // the source's newest sample when the rules were created
  let latest: number;
  let labels: Record<string, Record<string, string>>;
  const calls: string[] = [];
  const timeseries = {
    latest: async () => ({ timestamp: latest, value: 1 }),
    info: async (key: string) => (labels[key] ? { labels: { ...labels[key] }, retentionMs: 0, lastTimestamp: 0 } : null),
    ensureSeries: async (key: string, options: { labels: Record<string, string> }) => (calls.push(`ensure ${key}`), (labels[key] = options.labels)),
    ensureRule: async () => ({ created: true, sourceLatestAtCreation: { timestamp: created, value: 1 } }),
  } as unknown as TimeseriesService;
  const keys = { compaction: (k: string, a: string, t: string) => `${k}:${a}:${t}` } as unknown as RedisKeys;
  const config = { get: () => 0 } as unknown as ConfigService<never, true>;
  const price = { key: 'price', labels: {} } as unknown as SeriesDef;
  const pending = { [COMPLETE_FROM_LABEL]: String(T + H), [SETTLE_AFTER_LABEL]: String(created) };
  const completeFrom = (aggregation: string, tier = '1h') => labels[`price:${aggregation}:${tier}`][COMPLETE_FROM_LABEL];
  let service: CompactionService;

  beforeEach(async () => {
    calls.length = 0;
    labels = {};
    service = new CompactionService(timeseries, keys, config);
    await service.ensureAll([price]); // every rule created over data: complete from T+1h (1d: the next day), to settle
    expect(labels['price:sum:1h']).toMatchObject(pending);
    expect(service.hasUnsettled(price)).toBe(true);
    calls.length = 0;
  });

  it('ensureAll marks them to settle after the newest sample at creation', () => {
    expect(labels['price:count:1d']).toMatchObject({ [COMPLETE_FROM_LABEL]: String(T - (T % (24 * H)) + 24 * H), [SETTLE_AFTER_LABEL]: String(created) });
  });

  /** settleAfterAdd as SeriesRepository.add calls it: the newest sample before and after the add. */
  const settle = (before: number, samples: Array<{ timestamp: number; value: number }>, after?: number) =>
    service.settleAfterAdd(price, { timestamp: before, value: 1 }, { timestamp: after ?? Math.max(before, ...samples.map((x) => x.timestamp)), value: 1 }, samples);

  it('an add with nothing past that sample (duplicates, late ones) settles nothing', async () => {
    await settle(created, [{ timestamp: created, value: 1 }, { timestamp: T + 60_000, value: 2 }]);
    expect(calls).toEqual([]);
    expect(service.hasUnsettled(price)).toBe(true);
  });

  it('the first sample past it, in the order sent, opened the rules first bucket: the mark moves past that bucket', async () => {
    // Sent unsorted: T+2h05 arrives first, so the rules open 2h; T+1h30 after it is a late sample.
    await settle(created, [
      { timestamp: created, value: 1 },
      { timestamp: T + 2 * H + 5 * 60_000, value: 2 },
      { timestamp: T + H + 30 * 60_000, value: 3 },
    ]);
    expect(completeFrom('sum')).toBe(String(T + 3 * H));
    expect(completeFrom('count', '1d')).toBe(String(T - (T % (24 * H)) + 24 * H)); // the same day: its mark stays
    expect(labels['price:sum:1h']).not.toHaveProperty(SETTLE_AFTER_LABEL);
    expect(service.hasUnsettled(price)).toBe(false);
  });

  it('the mark only moves forward: a first sample in the newest bucket at creation keeps it', async () => {
    await settle(created, [{ timestamp: created + 60_000, value: 2 }]);
    expect(completeFrom('sum')).toBe(String(T + H));
  });

  it('a sample refused before it is sent (not finite) opens no bucket', async () => {
    await settle(created, [{ timestamp: T + 5 * H, value: NaN }, { timestamp: T + 2 * H, value: 2 }], T + 2 * H);
    expect(completeFrom('sum')).toBe(String(T + 3 * H));
  });

  it('a series already past it before this add (a write that was not settled): past the bucket of the newest sample before', async () => {
    await settle(T + 4 * H + 1, [{ timestamp: T + 6 * H, value: 2 }]);
    expect(completeFrom('sum')).toBe(String(T + 5 * H));
  });

  it('samples newer than these stored meanwhile (another writer may have opened the bucket): past the newest after', async () => {
    await settle(created, [{ timestamp: T + H + 7 * 60_000, value: 2 }], T + 2 * H + 11 * 60_000);
    expect(completeFrom('sum')).toBe(String(T + 3 * H));
  });

  it('another instance settled first: its mark is kept', async () => {
    labels['price:sum:1h'] = { [COMPLETE_FROM_LABEL]: String(T + 7 * H) };
    await settle(created, [{ timestamp: T + 2 * H, value: 2 }]);
    expect(completeFrom('sum')).toBe(String(T + 7 * H));
    expect(calls).not.toContain('ensure price:sum:1h');
  });

  it('coverage reads none of them once the source is past settle_after (raw instead), and writes nothing', async () => {
    latest = T + 6 * H;
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: null }]);
    expect(calls).toEqual([]);
    await settle(created, [{ timestamp: T + 2 * H, value: 2 }]);
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: { from: T + 3 * H, to: T + 6 * H } }]);
  });

  it('coverage keeps the mark while the source has nothing newer (no bucket after it is closed yet)', async () => {
    latest = created;
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: null }]);
    expect(calls).toEqual([]);
  });

  it('coverage reads nothing from a compaction whose label is not a timestamp', async () => {
    latest = T + 3 * H;
    labels['price:sum:1h'][SETTLE_AFTER_LABEL] = 'soon';
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: null }]);
  });
});

describe('CompactionService tiers', () => {
  const config = (values: Record<string, number | boolean>) => ({ get: (name: string) => values[name] }) as unknown as ConfigService<never, true>;
  const retentions = { TIMESERIES_HOURLY_RETENTION_MS: 1, TIMESERIES_DAILY_RETENTION_MS: 2, TIMESERIES_5MIN_RETENTION_MS: 3 };
  const tiersOf = (values: Record<string, number | boolean>) =>
    new CompactionService({} as TimeseriesService, {} as RedisKeys, config(values)).tiers.map((t) => [t.name, t.bucketMs, t.retentionMs]);

  it('are 1h and 1d by default, each with its retention setting', () => {
    expect(tiersOf({ ...retentions, TIMESERIES_5MIN_TIER: false })).toEqual([
      ['1h', 3_600_000, 1],
      ['1d', 86_400_000, 2],
    ]);
  });

  it('with TIMESERIES_5MIN_TIER, then 5m (added last, so an upgraded deployment only gains rules at the end)', () => {
    expect(tiersOf({ ...retentions, TIMESERIES_5MIN_TIER: true })).toEqual([
      ['1h', 3_600_000, 1],
      ['1d', 86_400_000, 2],
      ['5m', 300_000, 3],
    ]);
  });
});

describe('bucketAggregates (history written straight into the compactions)', () => {
  const H = 3_600_000;
  it('gives each epoch-aligned bucket the sum, count, min, max, first and last a rule accumulates, in time order', () => {
    const samples = [
      { timestamp: 0, value: 3 },
      { timestamp: H, value: 1 },
      { timestamp: 2 * H, value: 2 },
      { timestamp: 24 * H + H, value: 5 },
    ];
    expect(bucketAggregates(samples, 24 * H)).toEqual([
      { timestamp: 0, sum: 6, count: 3, min: 1, max: 3, first: 3, last: 2 },
      { timestamp: 24 * H, sum: 5, count: 1, min: 5, max: 5, first: 5, last: 5 },
    ]);
    // One sample per hour: each hourly bucket is that sample.
    expect(bucketAggregates(samples, H)[1]).toEqual({ timestamp: H, sum: 1, count: 1, min: 1, max: 1, first: 1, last: 1 });
  });

  it('addHistory writes each tier as its rules compute it and reports per sample what the hourly count stored', async () => {
    const H = 3_600_000;
    const written = new Map<string, Array<{ timestamp: number; value: number }>>();
    const timeseries = {
      add: async (key: string, samples: Array<{ timestamp: number; value: number }>) => {
        written.set(key, samples);
        // The 5 min tier's retention refuses what is too old; the hourly count stores everything.
        return key.endsWith(':5m')
          ? { stored: 1, duplicates: 0, rejected: samples.length - 1, errors: ['TSDB: Timestamp is older than retention'] }
          : { stored: samples.length, duplicates: 0, rejected: 0, errors: [] };
      },
    } as unknown as TimeseriesService;
    const keys = { compaction: (k: string, a: string, t: string) => `${k}:${a}:${t}` } as unknown as RedisKeys;
    const retention = { TIMESERIES_HOURLY_RETENTION_MS: 2 * 365 * 24 * H, TIMESERIES_DAILY_RETENTION_MS: 0, TIMESERIES_5MIN_TIER: true, TIMESERIES_5MIN_RETENTION_MS: 7 * 24 * H };
    const service = new CompactionService(timeseries, keys, { get: (n: string) => retention[n as keyof typeof retention] } as unknown as ConfigService<never, true>);
    const closes = [0, 1, 2, 25].map((h) => ({ timestamp: h * H, value: 10 + h }));
    const report = await service.addHistory({ key: 'price' } as SeriesDef, closes);
    expect(report).toEqual({ stored: 4, duplicates: 0, rejected: 0, errors: [] });
    // An hourly close is one sample: the 5 min bucket at its hour's start holds it alone.
    expect(written.get('price:count:5m')).toEqual(closes.map((c) => ({ timestamp: c.timestamp, value: 1 })));
    expect(written.get('price:sum:5m')).toEqual(closes);
    expect(written.get('price:sum:1d')).toEqual([{ timestamp: 0, value: 33 }, { timestamp: 24 * H, value: 35 }]);
  });

  it('firstRuleBucket: the start of the coarsest (daily) bucket, before which no rule ever writes', () => {
    const service = new CompactionService({} as TimeseriesService, {} as RedisKeys, { get: () => 0 } as unknown as ConfigService<never, true>);
    expect(service.firstRuleBucket(Date.UTC(2026, 11, 1, 7))).toBe(Date.UTC(2026, 11, 1));
  });
});
