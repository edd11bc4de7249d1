import { FakeSources, hourlyCloseAt, liveData, PATHS, testSourceHttp } from '../../../test/support/fake-sources.js';
import { PayloadError, PermanentUpstreamError } from '../source.errors.js';
import { candleWindows, CoinbaseProvider } from './coinbase.provider.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe('coinbase provider', () => {
  let fake: FakeSources;
  let provider: CoinbaseProvider;

  beforeEach(async () => {
    fake = await new FakeSources().start();
    provider = new CoinbaseProvider(testSourceHttp(), { baseUrl: `${fake.origin}/coinbase` });
  });
  afterEach(() => fake.stop());

  it('serves price in USD on every tick', () => {
    expect(provider.metrics).toEqual([{ metric: 'price', unit: 'USD', cadence: 'tick' }]);
  });

  describe('poll (ticker)', () => {
    it('reads the recorded ticker: price at the trade time (nine fractional digits → ms), sending our User-Agent', async () => {
      const batch = await provider.poll({ since: null });
      expect(batch).toEqual({
        samples: { price: [{ timestamp: 1781887413016, value: 63212.97 }] },
        fetched: 1,
        skipped: 0,
        invalid: 0,
        invalidReasons: [],
        attempts: 1,
      });
      const [call] = fake.calls(PATHS.coinbaseTicker);
      expect(call.headers['user-agent']).toBe('is-bitcoin-lit/test (+https://example.test)');
    });

    it('counts a trade time already stored as skipped (nothing traded since the last poll)', async () => {
      const batch = await provider.poll({ since: 1781887413016 });
      expect(batch).toMatchObject({ samples: { price: [] }, fetched: 1, skipped: 1 });
    });

    it.each([
      ['price is not a number', { price: 'abc' }],
      ['price is not positive', { price: '0.00' }],
      ['price is too long (10001 characters)', { price: `${'1'.repeat(10_000)}x` }], // 50,000 would pass the 16 KiB cap
      ['time is not an ISO-8601 time', { time: '19/06/2026' }],
      ['time is missing', { time: undefined }],
    ])('fails the run on a ticker whose %s', async (reason, patch) => {
      fake.data.coinbaseTicker = { ...fake.data.coinbaseTicker, ...patch };
      const err = await provider.poll({ since: null }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PayloadError);
      expect((err as Error).message).toContain(`#0: ${reason}`);
      expect((err as PayloadError).source).toBe('coinbase');
    });

    it('refuses a ticker over its 16 KiB cap', async () => {
      fake.data.coinbaseTicker = { ...fake.data.coinbaseTicker, price: `${'1'.repeat(50_000)}x` };
      await expect(provider.poll({ since: null })).rejects.toThrow('upstream payload is too large');
    });

    it('fails on a ticker that is not an object, and on a 400 without retrying', async () => {
      fake.override(PATHS.coinbaseTicker, { body: [1, 2], times: 1 });
      await expect(provider.poll({ since: null })).rejects.toThrow('upstream payload is not a JSON object (got array)');
      fake.override(PATHS.coinbaseTicker, { status: 400, body: { message: 'User-Agent header is required.' } });
      await expect(provider.poll({ since: null })).rejects.toThrow(PermanentUpstreamError);
      expect(fake.calls(PATHS.coinbaseTicker)).toHaveLength(2);
    });
  });

  describe('backfill (1-minute candles)', () => {
    it('reads the recorded candles (newest first) as closes at candle time, oldest first, missing minutes left out', async () => {
      const batch = await provider.backfill(1781887140000, 1781887380000);
      expect(batch.samples.price).toEqual([
        { timestamp: 1781887140000, value: 63239.75 },
        { timestamp: 1781887260000, value: 63221.4 },
        { timestamp: 1781887320000, value: 63210.12 },
        { timestamp: 1781887380000, value: 63212.97 },
      ]);
      expect(batch).toMatchObject({ fetched: 4, invalid: 0, attempts: 1 });
      expect(fake.calls(PATHS.coinbaseCandles)[0].query).toEqual({
        granularity: '60',
        start: '2026-06-19T16:39:00.000Z',
        end: '2026-06-19T16:43:00.000Z',
      });
    });

    it('backfills the 24 h before now in five calls of at most 299 minutes', async () => {
      const now = Date.UTC(2026, 5, 19, 16, 43, 33);
      fake.data = liveData(now);
      const batch = await provider.backfill(now - 86_400_000, now);
      const calls = fake.calls(PATHS.coinbaseCandles);
      expect(calls).toHaveLength(5);
      for (const c of calls) {
        expect(c.query.granularity).toBe('60');
        expect((Date.parse(c.query.end) - Date.parse(c.query.start)) / MINUTE).toBeLessThanOrEqual(298);
      }
      const price = batch.samples.price ?? [];
      expect(price).toHaveLength(1440);
      expect(price[0]).toEqual({ timestamp: 1781801040000, value: 60284.5 }); // 2026-06-18T16:44Z
      expect(price[1439]).toEqual({ timestamp: 1781887380000, value: 60523.5 }); // 2026-06-19T16:43Z
      expect(batch).toMatchObject({ fetched: 1440, invalid: 0, attempts: 5 });
    });

    it('leaves out the candle still open now (its close is not final): counted as skipped', async () => {
      // Not in the last seconds of a minute: the current one must still be open when the backfill runs.
      if (Date.now() % 60_000 > 55_000) await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 100));
      const now = Date.now();
      fake.data = liveData(now);
      const batch = await provider.backfill(now - 10 * MINUTE, now);
      const price = batch.samples.price ?? [];
      expect(price.length).toBeGreaterThanOrEqual(9);
      expect(price.every((s) => s.timestamp + MINUTE <= Date.now())).toBe(true);
      expect(price.at(-1)?.timestamp).toBe(Math.floor(now / MINUTE) * MINUTE - MINUTE);
      expect(batch.skipped).toBe(1);
    });

    it('counts candles outside the asked range as skipped, and leaves them out', async () => {
      fake.override(PATHS.coinbaseCandles, { body: fake.data.coinbaseCandles }); // ignores start/end
      const batch = await provider.backfill(1781887200000, 1781887380000);
      expect(batch).toMatchObject({ fetched: 4, skipped: 1, invalid: 0 });
      expect(batch.samples.price?.map((s) => s.timestamp)).toEqual([1781887260000, 1781887320000, 1781887380000]);
    });

    it('keeps good candles and reports a bad one', async () => {
      fake.data.coinbaseCandles = [[1781887380, 1, 2, 3, 'x', 5], ...fake.data.coinbaseCandles.slice(1), [1781887080]];
      const batch = await provider.backfill(1781887080000, 1781887380000);
      expect(batch.invalid).toBe(2);
      expect(batch.invalidReasons).toEqual(['#0: close is not a number', '#4: candle has 1 fields, not 6']);
      expect(batch.samples.price).toHaveLength(3);
    });

    it('refuses a candle off the minute, and every candle that gives a time another close', async () => {
      const [newest, ...rest] = fake.data.coinbaseCandles as unknown[][];
      // The newest candle's time again with another close, and a row 30 s after a minute.
      fake.data.coinbaseCandles = [[newest[0], 1, 2, 3, 1.5, 5], newest, [(newest[0] as number) - 30, 1, 2, 3, 119_700, 5], ...rest];
      const batch = await provider.backfill(1781887080000, 1781887380000);
      expect(batch.invalidReasons).toEqual([
        '#2: time is not at the start of a minute',
        `records at ${new Date((newest[0] as number) * 1000).toISOString()} give it different values`,
      ]);
      expect(batch.invalid).toBe(3);
      expect(batch.samples.price?.map((s) => s.timestamp)).not.toContain((newest[0] as number) * 1000);
      expect(batch.samples.price?.every((s) => s.value !== 1.5 && s.value !== 119_700)).toBe(true);
    });

    it('fails a page that is mostly garbage or longer than Coinbase ever sends', async () => {
      fake.override(PATHS.coinbaseCandles, { body: [[], [], [], [1781887380, 1, 2, 3, 4, 5]], times: 1 });
      await expect(provider.backfill(1781887080000, 1781887380000)).rejects.toThrow(/mostly invalid: 3 of 4/);
      fake.override(PATHS.coinbaseCandles, { body: Array.from({ length: 301 }, () => [1781887380, 1, 2, 3, 4, 5]) });
      await expect(provider.backfill(1781887080000, 1781887380000)).rejects.toThrow(/has 301 records, more than the 300/);
    });
  });

  describe('backfillHourly (granularity=3600)', () => {
    it('the month before in 3 calls of at most 299 hours: the close of each closed hour at its start', async () => {
      const now = Date.UTC(2026, 5, 19, 16, 43, 33);
      fake.data = liveData(now);
      const until = Date.UTC(2026, 5, 18, 16); // where the minutes would start
      const batch = await provider.backfillHourly(now - 720 * HOUR, until - 1);
      const calls = fake.calls(PATHS.coinbaseCandles).map((c) => c.query);
      expect(calls.map((q) => q.granularity)).toEqual(['3600', '3600', '3600']);
      expect(calls[0].start).toBe('2026-05-20T17:00:00.000Z');
      const price = batch.samples.price ?? [];
      expect(price).toHaveLength(695); // 2026-05-20T17:00 … 2026-06-18T15:00
      expect(price[0]).toEqual({ timestamp: Date.UTC(2026, 4, 20, 17), value: hourlyCloseAt(Date.UTC(2026, 4, 20, 17)) });
      expect(price.at(-1)).toEqual({ timestamp: until - HOUR, value: hourlyCloseAt(until - HOUR) });
      expect(batch).toMatchObject({ invalid: 0, attempts: 3 });
    });

    it('leaves out the hour still open now', async () => {
      const now = Date.now();
      fake.data = liveData(now);
      const batch = await provider.backfillHourly(now - 3 * HOUR, now);
      expect(batch.samples.price?.at(-1)?.timestamp).toBe(Math.floor(now / HOUR) * HOUR - HOUR);
      expect(batch.skipped).toBe(1);
    });
  });

  describe('candleWindows', () => {
    it('covers a range in contiguous whole-minute windows of at most 299 minutes', () => {
      const from = Date.UTC(2026, 5, 18, 16, 43, 33);
      const w = candleWindows(from, from + 86_400_000);
      expect(w).toHaveLength(5);
      expect(w[0][0]).toBe(Date.UTC(2026, 5, 18, 16, 44));
      expect(w[4][1]).toBe(Date.UTC(2026, 5, 19, 16, 43));
      for (let i = 1; i < w.length; i++) expect(w[i][0]).toBe(w[i - 1][1] + MINUTE);
      for (const [s, e] of w) expect((e - s) / MINUTE).toBeLessThanOrEqual(298);
    });

    it('keeps the newest 30 windows of a longer range, and nothing of an empty one', () => {
      const to = Date.UTC(2026, 5, 19);
      const w = candleWindows(to - 365 * 86_400_000, to);
      expect(w).toHaveLength(30);
      expect(w[29][1]).toBe(to);
      expect(candleWindows(to + 10, to + 20)).toEqual([]);
    });
  });
});
