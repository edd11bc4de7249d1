import { FakeSources, hourlyCloseAt, liveData, Obj, PATHS, testSourceHttp } from '../../../test/support/fake-sources.js';
import { PayloadError } from '../source.errors.js';
import { BitstampProvider, ohlcWindows } from './bitstamp.provider.js';

describe('bitstamp provider', () => {
  let fake: FakeSources;
  let provider: BitstampProvider;

  beforeEach(async () => {
    fake = await new FakeSources().start();
    provider = new BitstampProvider(testSourceHttp(), { baseUrl: `${fake.origin}/bitstamp/api/v2` });
  });
  afterEach(() => fake.stop());

  it('poll: `last` (a string) at the ticker `timestamp` (a string of seconds)', async () => {
    const batch = await provider.poll({ since: null });
    expect(batch).toEqual({
      samples: { price: [{ timestamp: 1791193016000, value: 85864 }] },
      fetched: 1,
      skipped: 0,
      invalid: 0,
      invalidReasons: [],
      attempts: 1,
    });
    expect(fake.calls(PATHS.bitstampTicker)[0].headers['user-agent']).toMatch(/^is-bitcoin-lit\//);
    await expect(provider.poll({ since: 1791193016000 })).resolves.toMatchObject({ samples: { price: [] }, skipped: 1 });
  });

  it('poll: a hostile `last` fails the run, by length', async () => {
    fake.data.bitstampTicker = { ...fake.data.bitstampTicker, last: `${'1'.repeat(5000)}x` };
    await expect(provider.poll({ since: null })).rejects.toThrow(/#0: last is too long \(5001 characters\)/);
  });

  it('backfill: the recorded rows (oldest first, strings) as closes at candle time', async () => {
    const batch = await provider.backfill(1791189960000, 1791190080000);
    expect(batch.samples.price).toEqual([
      { timestamp: 1791189960000, value: 85912.34 },
      { timestamp: 1791190020000, value: 85920.01 },
      { timestamp: 1791190080000, value: 85920.01 }, // a minute without trades: a flat candle
    ]);
    expect(fake.calls(PATHS.bitstampOhlc)[0].query).toEqual({ step: '60', limit: '3', start: '1791189960' });
  });

  it('backfill: the 24 h before now in two calls', async () => {
    const now = Date.UTC(2026, 5, 19, 16, 43, 33);
    fake.data = liveData(now);
    const batch = await provider.backfill(now - 86_400_000, now);
    expect(fake.calls(PATHS.bitstampOhlc).map((c) => c.query)).toEqual([
      { step: '60', limit: '1000', start: '1781801040' }, // 2026-06-18T16:44Z
      { step: '60', limit: '440', start: '1781861040' }, // 2026-06-19T09:24Z
    ]);
    const price = batch.samples.price ?? [];
    expect(price).toHaveLength(1440);
    expect(price[0]).toEqual({ timestamp: 1781801040000, value: 60284.5 });
    expect(price[1439]).toEqual({ timestamp: 1781887380000, value: 60523.5 });
  });

  it('backfill: leaves out the candle still open now (its close is not final), counted as skipped', async () => {
    // Not in the last seconds of a minute: the current one must still be open when the backfill runs.
    if (Date.now() % 60_000 > 55_000) await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 100));
    const now = Date.now();
    fake.data = liveData(now);
    const batch = await provider.backfill(now - 10 * 60_000, now);
    const price = batch.samples.price ?? [];
    expect(price.at(-1)?.timestamp).toBe(Math.floor(now / 60_000) * 60_000 - 60_000);
    expect(batch.skipped).toBe(1);
  });

  it('backfill: bad rows are reported, a payload without data fails', async () => {
    const rows = fake.data.bitstampOhlc;
    fake.data.bitstampOhlc = [{ ...rows[0], close: '' }, rows[1], rows[2]];
    const batch = await provider.backfill(1791189960000, 1791190080000);
    expect(batch).toMatchObject({ invalid: 1, invalidReasons: ['#0: close is not a number'] });
    expect(batch.samples.price).toHaveLength(2);
    fake.override(PATHS.bitstampOhlc, { body: { code: 'API0001', errors: [] } });
    await expect(provider.backfill(1791189960000, 1791190080000)).rejects.toThrow(new PayloadError('ohlc payload has no data'));
  });

  it('backfill: a page with more rows than Bitstamp ever sends fails', async () => {
    const row: Obj = fake.data.bitstampOhlc[0];
    fake.override(PATHS.bitstampOhlc, { body: { data: { pair: 'BTC/USD', ohlc: Array.from({ length: 1001 }, () => row) } } });
    await expect(provider.backfill(1791189960000, 1791190080000)).rejects.toThrow(/has 1001 records, more than the 1000/);
  });

  it('backfillHourly: the month before in one call of step=3600, the closed hours only', async () => {
    const now = Date.now();
    fake.data = liveData(now);
    const batch = await provider.backfillHourly(now - 720 * 3_600_000, now);
    const [call, ...more] = fake.calls(PATHS.bitstampOhlc);
    expect(more).toEqual([]);
    expect(call.query).toMatchObject({ step: '3600', limit: '720' });
    const price = batch.samples.price ?? [];
    expect(price).toHaveLength(719); // the 720th, the current hour, is still open
    expect(price.every((s) => s.value === hourlyCloseAt(s.timestamp) && s.timestamp % 3_600_000 === 0)).toBe(true);
    expect(price.at(-1)?.timestamp).toBe(Math.floor(now / 3_600_000) * 3_600_000 - 3_600_000);
  });

  it('ohlcWindows: at most 10 windows of 1,000 minutes, the newest', () => {
    const to = Date.UTC(2026, 5, 19);
    const w = ohlcWindows(to - 30 * 86_400_000, to);
    expect(w).toHaveLength(10);
    expect(w[9][0] + (w[9][1] - 1) * 60_000).toBe(to);
  });
});
