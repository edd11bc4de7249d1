import { ConfigService } from '@nestjs/config';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { COMPLETE_FROM_LABEL, CompactionService } from './compaction.service.js';
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
