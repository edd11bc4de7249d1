import { ConfigService } from '@nestjs/config';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { bucketAggregates, COMPLETE_FROM_LABEL, CompactionService } from './compaction.service.js';
import type { SeriesDef } from './series.catalog.js';

describe('CompactionService.coverage', () => {
  const calls: string[] = [];
  const timeseries = {
    latest: async (key: string) => (calls.push(`latest ${key}`), { timestamp: 1_625_680_000_000, value: 1 }),
    info: async (key: string) => (calls.push(`info ${key}`), { labels: { [COMPLETE_FROM_LABEL]: '0' }, retentionMs: 0, lastTimestamp: 0 }),
  } as unknown as TimeseriesService;
  const keys = { compaction: (k: string, a: string, t: string) => `${k}:${a}:${t}` } as unknown as RedisKeys;
  const price = { key: 'price' } as SeriesDef;
  const config = { get: () => 0 } as unknown as ConfigService<never, true>;
  const service = new CompactionService(timeseries, keys, config);

  beforeEach(() => (calls.length = 0));

  it('asks Redis nothing when no tier divides the bucket (30 s, 90 min)', async () => {
    expect(await service.coverage(price, ['sum', 'count'], 30_000)).toEqual([]);
    expect(await service.coverage(price, ['sum', 'count'], 90 * 60_000)).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('asks only about the tiers that divide the bucket', async () => {
    const tiers = await service.coverage(price, ['sum', 'count'], 3_600_000);
    expect(tiers.map((t) => t.bucketMs)).toEqual([3_600_000]);
    expect(calls).toEqual(['latest price', 'info price:sum:1h', 'info price:count:1h']);
    expect((await service.coverage(price, ['max'], 86_400_000)).map((t) => t.bucketMs)).toEqual([3_600_000, 86_400_000]);
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

  it('firstRuleBucket: the start of the coarsest (daily) bucket, before which no rule ever writes', () => {
    const service = new CompactionService({} as TimeseriesService, {} as RedisKeys, { get: () => 0 } as unknown as ConfigService<never, true>);
    expect(service.firstRuleBucket(Date.UTC(2026, 11, 1, 7))).toBe(Date.UTC(2026, 11, 1));
  });
});
