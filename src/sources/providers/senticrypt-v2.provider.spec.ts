import { FakeSources, liveData, Obj, PATHS, senticryptV2Days, testSourceHttp } from '../../../test/support/fake-sources.js';
import { PayloadError } from '../source.errors.js';
import { SENTICRYPT_V2_LIMITS, SenticryptV2Provider } from './senticrypt-v2.provider.js';

const DAY = 86_400_000;

describe('senticrypt-v2 provider', () => {
  let fake: FakeSources;
  let provider: SenticryptV2Provider;

  beforeEach(async () => {
    fake = await new FakeSources().start();
    provider = new SenticryptV2Provider(testSourceHttp(), { baseUrl: `${fake.origin}/senticrypt/v2` });
  });
  afterEach(() => fake.stop());

  it('serves daily sentiment on the -1..1 scale', () => {
    expect(provider.metrics).toEqual([{ metric: 'sentiment', unit: 'score -1..1', cadence: 'daily' }]);
  });

  it('poll without stored data: the newest day only, at 00:00 UTC of its date', async () => {
    const batch = await provider.poll({ since: null });
    expect(batch).toEqual({
      samples: { sentiment: [{ timestamp: 1681689600000, value: -0.0722 }] }, // 2023-04-17
      fetched: 3,
      skipped: 2,
      invalid: 0,
      invalidReasons: [],
      attempts: 1,
    });
    expect(fake.calls(PATHS.senticryptV2)[0].headers['user-agent']).toMatch(/^is-bitcoin-lit\//);
  });

  it('poll after an outage: every day newer than what is stored', async () => {
    const batch = await provider.poll({ since: 1681516800000 }); // 2023-04-15 stored
    expect(batch.samples.sentiment).toEqual([
      { timestamp: 1681603200000, value: 0.0332 },
      { timestamp: 1681689600000, value: -0.0722 },
    ]);
    expect(batch.skipped).toBe(1);
  });

  it('backfill: the days in range, from the whole history', async () => {
    const now = Date.UTC(2026, 5, 19, 16, 43, 33);
    fake.data = liveData(now);
    const batch = await provider.backfill(now - 2 * DAY, now);
    expect(batch.samples.sentiment).toEqual([
      { timestamp: 1781740800000, value: -1 }, // 2026-06-18
      { timestamp: 1781827200000, value: -0.9 }, // 2026-06-19
    ]);
    expect(batch).toMatchObject({ fetched: 30, skipped: 28, invalid: 0 }); // 2026-05-21 … 2026-06-19
  });

  it("stores only complete days: today's record waits for the next UTC day (poll and backfill)", async () => {
    const now = Date.UTC(2026, 5, 19, 16, 43, 33);
    fake.data = liveData(now); // … 2026-06-18, 2026-06-19 (today, still accumulating)
    const clocked = (at: number) => new SenticryptV2Provider(testSourceHttp(), { baseUrl: `${fake.origin}/senticrypt/v2`, now: () => at });
    const yesterday = { timestamp: Date.UTC(2026, 5, 18), value: -1 };
    expect((await clocked(now).poll({ since: null })).samples.sentiment).toEqual([yesterday]);
    expect(await clocked(now).poll({ since: yesterday.timestamp })).toMatchObject({ samples: { sentiment: [] }, skipped: 30 });
    expect((await clocked(now).backfill(now - 2 * DAY, now)).samples.sentiment).toEqual([yesterday]);
    // From 00:00 UTC on, the 19th is complete.
    const midnight = Date.UTC(2026, 5, 20);
    expect((await clocked(midnight).poll({ since: yesterday.timestamp })).samples.sentiment).toEqual([{ timestamp: Date.UTC(2026, 5, 19), value: -0.9 }]);
    expect((await clocked(midnight - 1).poll({ since: yesterday.timestamp })).samples.sentiment).toEqual([]);
  });

  it('keeps good days and reports bad ones; tolerates extra fields', async () => {
    fake.data.senticryptV2 = [
      ...fake.data.senticryptV2,
      { date: '2023-04-18', mean: 1.5 },
      { date: '2023-02-30', mean: 0.1 },
      { date: '2023-04-19', mean: '0.25', extra: { nested: true } },
      { date: '2023-04-20', mean: `${'1'.repeat(50_000)}x` },
    ];
    const batch = await provider.backfill(0, Date.UTC(2030, 0, 1));
    expect(batch.invalid).toBe(3);
    expect(batch.invalidReasons).toEqual(['#3: mean is outside -1..1', '#4: date is not a valid date', '#6: mean is too long (50001 characters)']);
    expect(batch.samples.sentiment).toHaveLength(4);
  });

  it('fails a payload that is not an array, too long, or mostly garbage', async () => {
    fake.override(PATHS.senticryptV2, { body: { detail: 'Not Found' }, times: 1 });
    await expect(provider.poll({ since: null })).rejects.toThrow(new PayloadError('upstream payload is not a JSON array (got object)'));
    fake.data.senticryptV2 = Array.from({ length: SENTICRYPT_V2_LIMITS.records + 1 }, () => [] as unknown as Obj);
    await expect(provider.poll({ since: null })).rejects.toThrow(/more than the 20000/);
    fake.data.senticryptV2 = [[] as unknown as Obj, [] as unknown as Obj, ...senticryptV2Days(Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 1))];
    await expect(provider.backfill(0, Date.UTC(2030, 0, 1))).rejects.toThrow(/mostly invalid: 2 of 3/);
  });

  it('refuses a redirect to another origin as a failed run', async () => {
    fake.override(PATHS.senticryptV2, { redirect: 'http://127.0.0.2:1/internal' });
    await expect(provider.poll({ since: null })).rejects.toMatchObject({ name: 'PermanentUpstreamError', source: 'senticrypt-v2' });
  });
});
