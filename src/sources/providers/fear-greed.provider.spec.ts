import { FakeSources, liveData, PATHS, testSourceHttp } from '../../../test/support/fake-sources.js';
import { PayloadError } from '../source.errors.js';
import { FearGreedProvider } from './fear-greed.provider.js';

const DAY = 86_400_000;

describe('fear-greed provider', () => {
  let fake: FakeSources;
  let now = 0;
  let provider: FearGreedProvider;

  beforeEach(async () => {
    fake = await new FakeSources().start();
    now = 1746148800000 + 3_600_000;
    provider = new FearGreedProvider(testSourceHttp(), { baseUrl: `${fake.origin}/alternative`, now: () => now });
  });
  afterEach(() => fake.stop());

  it('serves a daily index 0..100', () => {
    expect(provider.metrics).toEqual([{ metric: 'sentiment', unit: 'index 0..100', cadence: 'daily' }]);
  });

  it('poll with nothing stored: limit=1, the newest value, timestamp seconds → ms, never date_format', async () => {
    const batch = await provider.poll({ since: null });
    expect(batch).toEqual({
      samples: { sentiment: [{ timestamp: 1746148800000, value: 39 }] },
      fetched: 1,
      skipped: 0,
      invalid: 0,
      invalidReasons: [],
      attempts: 1,
    });
    expect(fake.calls(PATHS.fearGreed)[0].query).toEqual({ limit: '1', format: 'json' });
  });

  it('poll after an outage: enough entries to cover it, those already stored skipped, oldest first', async () => {
    const batch = await provider.poll({ since: 1745976000000 });
    expect(fake.calls(PATHS.fearGreed)[0].query.limit).toBe('4');
    expect(batch.samples.sentiment).toEqual([
      { timestamp: 1746062400000, value: 52 },
      { timestamp: 1746148800000, value: 39 },
    ]);
    expect(batch).toMatchObject({ fetched: 3, skipped: 1 });
  });

  it('backfill: limit from the range, the entries in range', async () => {
    now = Date.UTC(2026, 5, 19, 16, 43, 33);
    fake.data = liveData(now);
    const batch = await provider.backfill(now - 7 * DAY, now);
    expect(fake.calls(PATHS.fearGreed)[0].query).toEqual({ limit: '8', format: 'json' });
    const s = batch.samples.sentiment ?? [];
    expect(s).toHaveLength(7);
    expect(s[0]).toEqual({ timestamp: 1781308800000, value: 13 }); // 2026-06-13
    expect(s[6]).toEqual({ timestamp: 1781827200000, value: 19 }); // 2026-06-19
    expect(batch.skipped).toBe(1);
  });

  it('bad entries are reported, the good ones kept', async () => {
    fake.data.fearGreed = [{ value: '101', timestamp: '1746235200' }, ...fake.data.fearGreed, { value: '5', timestamp: '02-05-2025' }];
    now = 1746235200000;
    const batch = await provider.backfill(1745976000000 - DAY, now);
    expect(batch.invalidReasons).toEqual(['#0: value is outside 0..100', '#4: timestamp is not whole seconds']);
    expect(batch.samples.sentiment).toHaveLength(3);
  });

  it('one value a UTC day: entries that share a day are all refused, the other days kept', async () => {
    // A 0 a minute after the newest day's entry, on that same day.
    fake.data.fearGreed = [{ value: '0', timestamp: '1746148860' }, ...fake.data.fearGreed];
    now = 1746235200000;
    const batch = await provider.backfill(1745976000000 - DAY, now);
    expect(batch.invalid).toBe(2);
    expect(batch.invalidReasons).toEqual(['several entries on 2025-05-02 (one a day)']);
    expect(batch.samples.sentiment?.map((s) => s.value)).toEqual([73, 52]);
  });

  it('one value a UTC day across polls too: an entry later on the day already stored is refused', async () => {
    // Stored: 2025-05-01's entry. The poll brings it again (skipped) and a later one on that day.
    fake.data.fearGreed = [{ value: '0', timestamp: '1746062460' }, ...fake.data.fearGreed.slice(1)];
    now = 1746148800000 - 3_600_000;
    const batch = await provider.poll({ since: 1746062400000 });
    expect(batch.invalidReasons).toEqual(['#0: a second entry for a UTC day already stored (one a day)']);
    expect(batch.samples.sentiment ?? []).toEqual([]);
  });

  it('an error in metadata fails the run without quoting it; so does a payload without data', async () => {
    fake.override(PATHS.fearGreed, { body: { name: 'Fear and Greed Index', data: [], metadata: { error: 'SECRET internal' } }, times: 1 });
    const err = await provider.poll({ since: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as Error).message).toBe('alternative.me reported an error');
    fake.override(PATHS.fearGreed, { body: { name: 'x', metadata: { error: null } } });
    await expect(provider.poll({ since: null })).rejects.toThrow('upstream data is not a JSON array (got undefined)');
  });

  it('more entries than asked for is not what we asked for', async () => {
    fake.override(PATHS.fearGreed, { body: { data: Array.from({ length: 12 }, () => ({ value: '1', timestamp: '1746148800' })), metadata: { error: null } } });
    await expect(provider.poll({ since: null })).rejects.toThrow(/has 12 records, more than the 11/);
  });
});
