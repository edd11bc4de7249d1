/** The fake provider server other tests rely on behaves like the real APIs where it matters. */
import { FakeSources, PATHS, coinbaseCandles, fearGreedDays, liveData, priceAt } from '../../test/support/fake-sources.js';

describe('FakeSources (test support)', () => {
  let fake: FakeSources;
  beforeEach(async () => {
    fake = await new FakeSources().start();
  });
  afterEach(() => fake.stop());

  const get = (path: string, headers: Record<string, string> = { 'user-agent': 'spec' }) => fetch(`${fake.origin}${path}`, { headers });

  it('points every base URL at itself', () => {
    const env = fake.env();
    expect(`${env.COINBASE_API_URL}/products/BTC-USD/ticker`).toBe(`${fake.origin}${PATHS.coinbaseTicker}`);
    expect(`${env.BITSTAMP_API_URL}/ohlc/btcusd/`).toBe(`${fake.origin}${PATHS.bitstampOhlc}`);
    expect(`${env.KRAKEN_API_URL}/OHLC`).toBe(`${fake.origin}${PATHS.krakenOhlc}`);
    expect(`${env.SENTICRYPT_V2_API_URL}/all.json`).toBe(`${fake.origin}${PATHS.senticryptV2}`);
    expect(`${env.FEAR_GREED_API_URL}/fng/`).toBe(`${fake.origin}${PATHS.fearGreed}`);
    expect(env.SENTIMENT_API_URL).toBe(`${fake.origin}${PATHS.senticryptV1}`);
    // Explicit sources: SENTIMENT_API_URL alone would mean senticrypt-v1 for both.
    expect([env.PRICE_SOURCE, env.SENTIMENT_SOURCE]).toEqual(['coinbase', 'senticrypt-v2']);
    expect(fake.env({ price: 'kraken' }).PRICE_SOURCE).toBe('kraken');
  });

  it('Coinbase: 400 without a User-Agent; candles filtered by start/end, newest first; > 300 buckets is a 400', async () => {
    fake.data.coinbaseCandles = coinbaseCandles(Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 1, 10));
    expect((await fetch(`${fake.origin}${PATHS.coinbaseTicker}`, { headers: { 'user-agent': '' } })).status).toBe(400);
    const q = '?granularity=60&start=2026-01-01T01:00:00.000Z&end=2026-01-01T01:02:00.000Z';
    const rows = (await (await get(`${PATHS.coinbaseCandles}${q}`)).json()) as number[][];
    expect(rows.map((r) => r[0])).toEqual([1767229320, 1767229260, 1767229200]);
    expect(rows[0][4]).toBe(60000 + ((1767229320 / 60) % 600) + 0.5);
    const tooWide = await get(`${PATHS.coinbaseCandles}?granularity=60&start=2026-01-01T00:00:00Z&end=2026-01-01T05:01:00Z`);
    expect(tooWide.status).toBe(400);
  });

  it('Kraken: only the newest 720 rows; fear-greed: limit and date_format as the real API', async () => {
    const now = Date.UTC(2026, 5, 19, 16, 43, 33);
    fake.data = liveData(now);
    const ohlc = (await (await get(`${PATHS.krakenOhlc}?pair=XBTUSD&interval=1&since=0`)).json()) as { result: { XXBTZUSD: unknown[][] } };
    expect(ohlc.result.XXBTZUSD).toHaveLength(720);
    expect(ohlc.result.XXBTZUSD[719][0]).toBe(1781887380);
    fake.data.fearGreed = fearGreedDays(Date.UTC(2026, 5, 10), Date.UTC(2026, 5, 19));
    const two = (await (await get(`${PATHS.fearGreed}?limit=2&format=json`)).json()) as { data: Array<Record<string, string>> };
    expect(two.data.map((e) => e.timestamp)).toEqual(['1781827200', '1781740800']);
    const dated = (await (await get(`${PATHS.fearGreed}?limit=1&date_format=world`)).json()) as { data: Array<Record<string, string>> };
    expect(dated.data[0].timestamp).toBe('2026-06-19');
  });

  it('overrides answer for N requests, then the data again; every request is logged', async () => {
    fake.override(PATHS.senticryptV2, { status: 503, raw: 'busy', times: 1 });
    expect((await get(PATHS.senticryptV2)).status).toBe(503);
    expect((await get(PATHS.senticryptV2)).status).toBe(200);
    fake.override(PATHS.senticryptV2, { redirect: 'http://elsewhere.test/x' });
    const r = await fetch(`${fake.origin}${PATHS.senticryptV2}`, { redirect: 'manual' });
    expect([r.status, r.headers.get('location')]).toEqual([302, 'http://elsewhere.test/x']);
    expect(fake.calls(PATHS.senticryptV2).map((c) => c.headers['user-agent']).slice(0, 2)).toEqual(['spec', 'spec']);
    expect(fake.requests).toHaveLength(3);
  });

  it('priceAt is the documented formula', () => {
    expect(priceAt(Date.UTC(2026, 5, 19, 16, 43, 59))).toBe(60523.5);
  });
});
