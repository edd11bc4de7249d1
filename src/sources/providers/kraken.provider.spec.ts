import { FakeSources, hourlyCloseAt, liveData, PATHS, testSourceHttp } from '../../../test/support/fake-sources.js';
import { PayloadError, PermanentUpstreamError, TransientUpstreamError } from '../source.errors.js';
import { KrakenProvider } from './kraken.provider.js';

const NOW = Date.UTC(2026, 5, 19, 16, 43, 33);

describe('kraken provider', () => {
  let fake: FakeSources;
  let provider: KrakenProvider;

  beforeEach(async () => {
    fake = await new FakeSources().start();
    provider = new KrakenProvider(testSourceHttp(), { baseUrl: `${fake.origin}/kraken/0/public`, now: () => NOW });
  });
  afterEach(() => fake.stop());

  it('reaches back only 12 h of minutes and 30 days of hours (Kraken serves the newest 720 rows)', () => {
    expect(provider.backfillReachMs).toBe(43_200_000);
    expect(provider.hourlyReachMs).toBe(720 * 3_600_000);
  });

  it('backfillHourly: interval=60, the newest 720 hours less the open one, closes at the hour start', async () => {
    fake.data = liveData(NOW);
    const batch = await provider.backfillHourly(NOW - 720 * 3_600_000, NOW);
    expect(fake.calls(PATHS.krakenOhlc)[0].query).toMatchObject({ pair: 'XBTUSD', interval: '60' });
    const price = batch.samples.price ?? [];
    expect(price).toHaveLength(719);
    expect(price[0].timestamp).toBe(Date.UTC(2026, 5, 19, 16) - 719 * 3_600_000);
    expect(price.at(-1)).toEqual({ timestamp: Date.UTC(2026, 5, 19, 15), value: Number(hourlyCloseAt(Date.UTC(2026, 5, 19, 15)).toFixed(1)) });
  });

  it('poll: c[0] of the single result key (XXBTZUSD for XBTUSD), at poll time', async () => {
    const batch = await provider.poll();
    expect(batch).toEqual({
      samples: { price: [{ timestamp: NOW, value: 84321.77 }] },
      fetched: 1,
      skipped: 0,
      invalid: 0,
      invalidReasons: [],
      attempts: 1,
    });
    expect(fake.calls(PATHS.krakenTicker)[0].query).toEqual({ pair: 'XBTUSD' });
  });

  it('poll: takes whatever the single key is called', async () => {
    fake.override(PATHS.krakenTicker, { body: { error: [], result: { XBTUSD: { c: ['70000.1', '1'] } } } });
    await expect(provider.poll()).resolves.toMatchObject({ samples: { price: [{ timestamp: NOW, value: 70000.1 }] } });
  });

  it('errors in the `error` array with HTTP 200: rate limits are transient, others permanent, unknown text never quoted', async () => {
    fake.override(PATHS.krakenTicker, { body: { error: ['EAPI:Rate limit exceeded'] }, times: 1 });
    const limited = await provider.poll().catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(TransientUpstreamError);
    expect((limited as Error).message).toBe('Kraken reported EAPI:Rate limit exceeded');
    fake.override(PATHS.krakenTicker, { body: { error: ['EQuery:Unknown asset pair'] }, times: 1 });
    await expect(provider.poll()).rejects.toThrow(PermanentUpstreamError);
    fake.override(PATHS.krakenTicker, { body: { error: ['EGeneral:<internal page text>'] }, times: 1 });
    const odd = await provider.poll().catch((e: unknown) => e);
    expect((odd as Error).message).toBe('Kraken reported an unrecognised error');
    expect((odd as PermanentUpstreamError).source).toBe('kraken');
  });

  it('a result with several pairs, or no error array, fails', async () => {
    fake.override(PATHS.krakenTicker, { body: { error: [], result: { A: {}, B: {} } }, times: 1 });
    await expect(provider.poll()).rejects.toThrow(new PayloadError('upstream result has 2 pairs, not 1'));
    fake.override(PATHS.krakenTicker, { body: { result: {} }, times: 1 });
    await expect(provider.poll()).rejects.toThrow(PayloadError);
  });

  it('backfill: the recorded rows as closes at candle time, without the candle still open', async () => {
    const batch = await provider.backfill(1729209600000, 1729209780000);
    expect(batch.samples.price).toEqual([
      { timestamp: 1729209600000, value: 68440.3 },
      { timestamp: 1729209660000, value: 68420.5 },
      { timestamp: 1729209720000, value: 68415.9 },
    ]);
    expect(batch).toMatchObject({ fetched: 4, skipped: 1, invalid: 0 }); // the open candle: counted, not sent
    expect(fake.calls(PATHS.krakenOhlc)[0].query).toEqual({ pair: 'XBTUSD', interval: '1', since: '1729209540' });
  });

  it('backfill of 24 h about now gets the last 12 h only: 719 closed minutes', async () => {
    fake.data = liveData(NOW);
    const batch = await provider.backfill(NOW - 86_400_000, NOW);
    const price = batch.samples.price ?? [];
    expect(price).toHaveLength(719);
    expect(price[0]).toEqual({ timestamp: 1781844240000, value: 60404.5 }); // 2026-06-19T04:44Z
    expect(price[718]).toEqual({ timestamp: 1781887320000, value: 60522.5 }); // 16:42Z; 16:43 is still open
    expect(fake.calls(PATHS.krakenOhlc)).toHaveLength(1);
  });

  it('backfill: the open candle is left out by its time too, when Kraken repeats it or sends rows out of order', async () => {
    const minute = Math.floor(NOW / 60_000) * 60; // the open candle's start, epoch s
    const row = (t: number, close: string) => [t, close, close, close, close, close, '1', 1];
    const rows = [row(minute - 120, '60000.1'), row(minute - 60, '60000.2'), row(minute, '11111.1'), row(minute, '11111.1')];
    fake.override(PATHS.krakenOhlc, { body: { error: [], result: { XXBTZUSD: rows, last: minute } } });
    const batch = await provider.backfill(NOW - 600_000, NOW);
    expect(batch.samples.price).toEqual([
      { timestamp: (minute - 120) * 1000, value: 60000.1 },
      { timestamp: (minute - 60) * 1000, value: 60000.2 },
    ]);
  });

  it('backfill: a mostly broken page fails', async () => {
    fake.override(PATHS.krakenOhlc, { body: { error: [], result: { XXBTZUSD: [[1], [2], [1729209600, 'x', 'x', 'x', '1.5'], [3]], last: 1 } } });
    await expect(provider.backfill(0, NOW)).rejects.toThrow(/mostly invalid: 2 of 3/);
  });
});
