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

describe('CompactionService.coverage of a compaction still to settle (rule created over stored data)', () => {
  const H = 3_600_000;
  const T = 1_625_680_800_000; // an hour boundary
  const created = T + 10 * 60_000; // the source's newest sample when the rules were created
  let latest: number;
  let firstAfter: number | undefined;
  let labels: Record<string, Record<string, string>>;
  const calls: string[] = [];
  const timeseries = {
    latest: async () => ({ timestamp: latest, value: 1 }),
    info: async (key: string) => ({ labels: { ...labels[key] }, retentionMs: 0, lastTimestamp: 0 }),
    range: async (q: { key: string; from: number; count?: number }) => (
      calls.push(`range ${q.key} from ${q.from} count ${q.count}`), firstAfter === undefined ? [] : [{ timestamp: firstAfter, value: 1 }]
    ),
    ensureSeries: async (key: string, options: { labels: Record<string, string> }) => (calls.push(`ensure ${key}`), (labels[key] = options.labels)),
  } as unknown as TimeseriesService;
  const keys = { compaction: (k: string, a: string, t: string) => `${k}:${a}:${t}` } as unknown as RedisKeys;
  const config = { get: () => 0 } as unknown as ConfigService<never, true>;
  const service = new CompactionService(timeseries, keys, config);
  const price = { key: 'price' } as SeriesDef;
  const pending = { [COMPLETE_FROM_LABEL]: String(T + H), [SETTLE_AFTER_LABEL]: String(created), bucket: '1h' };

  beforeEach(() => {
    calls.length = 0;
    labels = { 'price:sum:1h': { ...pending }, 'price:count:1h': { ...pending } };
  });

  it('leaves the mark alone while no newer sample exists (the open bucket is before it anyway)', async () => {
    latest = created;
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: null }]);
    expect(calls).toEqual([]);
  });

  it('keeps the mark when the first newer sample was in the same bucket, and drops the label', async () => {
    latest = T + 3 * H + 60_000;
    firstAfter = T + 20 * 60_000;
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: { from: T + H, to: T + 3 * H } }]);
    expect(calls).toEqual([
      `range price from ${created + 1} count 1`,
      'ensure price:sum:1h',
      `range price from ${created + 1} count 1`,
      'ensure price:count:1h',
    ]);
    expect(labels['price:sum:1h']).toEqual({ [COMPLETE_FROM_LABEL]: String(T + H), bucket: '1h' });
  });

  it('moves the mark past the bucket of the first newer sample when that bucket is later, once', async () => {
    latest = T + 3 * H + 60_000;
    firstAfter = T + H + 5 * 60_000;
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: { from: T + 2 * H, to: T + 3 * H } }]);
    expect(labels['price:count:1h']).toEqual({ [COMPLETE_FROM_LABEL]: String(T + 2 * H), bucket: '1h' });
    calls.length = 0;
    expect(await service.coverage(price, ['sum', 'count'], H)).toEqual([{ bucketMs: H, complete: { from: T + 2 * H, to: T + 3 * H } }]);
    expect(calls).toEqual([]);
  });

  it('reads nothing from a compaction whose label is not a timestamp', async () => {
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
