/**
 * One real HTTP server on 127.0.0.1 that answers every provider's documented paths in its
 * recorded format (test/fixtures/sources, shapes from LIVE-SOURCES.md), with per-path
 * overrides (status, hang, redirect, raw body) and a log of every request. Builders below
 * make recorded-format payloads for any time range, so tests can exercise backfill "about now".
 *
 *   const fake = await new FakeSources().start();          // recorded fixtures
 *   const fake = await new FakeSources(liveData(now)).start(); // the 24 h before `now`
 *   bootApp({ ...fake.env() });                             // coinbase + senticrypt-v2
 *   bootApp({ ...fake.env({ price: 'kraken', sentiment: 'fear-greed' }) });
 */
import { HttpService } from '@nestjs/axios';
import axios from 'axios';
import { readFileSync } from 'node:fs';
import { createServer, IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { SourceHttpClient, SourceHttpOptions } from '../../src/sources/source-http.service.js';

export type Row = unknown[];
export type Obj = Record<string, unknown>;

/** Everything the server serves; tests may replace any part at any time. */
export interface FakeSourcesData {
  coinbaseTicker: Obj;
  /** All the candles Coinbase "has", newest first: [time s, low, high, open, close, volume]. */
  coinbaseCandles: Row[];
  /** The same at granularity=3600 (none unless a test gives them). */
  coinbaseHourly: Row[];
  bitstampTicker: Obj;
  /** All the OHLC rows Bitstamp "has", oldest first, every field a string. */
  bitstampOhlc: Obj[];
  /** The same at step=3600. */
  bitstampHourly: Obj[];
  /** The ticker entry served under `result.XXBTZUSD`. */
  krakenTicker: Obj;
  /** All the OHLC rows Kraken "has", oldest first; only the newest 720 are served, the last is the open candle. */
  krakenOhlc: Row[];
  /** The same at interval=60. */
  krakenHourly: Row[];
  /** all.json, as served. */
  senticryptV2: Obj[];
  /** The whole index history, newest first. */
  fearGreed: Obj[];
  /** The v1 feed, as served. */
  senticryptV1: unknown[];
}

/** The paths each provider calls (base URL from env() + its documented path). */
export const PATHS = {
  coinbaseTicker: '/coinbase/products/BTC-USD/ticker',
  coinbaseCandles: '/coinbase/products/BTC-USD/candles',
  bitstampTicker: '/bitstamp/api/v2/ticker/btcusd/',
  bitstampOhlc: '/bitstamp/api/v2/ohlc/btcusd/',
  krakenTicker: '/kraken/0/public/Ticker',
  krakenOhlc: '/kraken/0/public/OHLC',
  senticryptV2: '/senticrypt/v2/all.json',
  fearGreed: '/alternative/fng/',
  senticryptV1: '/senticrypt/v1/bitcoin.json',
} as const;
export type FakePath = (typeof PATHS)[keyof typeof PATHS] | (string & {});

/** How one path answers instead of its data. */
export interface FakeOverride {
  status?: number;
  /** JSON body (ignored when `raw` is given). */
  body?: unknown;
  /** Body sent as is. */
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** Never answer (the client must time out). */
  hang?: boolean;
  /** Answer 302 with this Location. */
  redirect?: string;
  /** Apply to the next N requests only, then answer normally again. */
  times?: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** Arrival (epoch ms), for pacing assertions. */
  at: number;
}

const FIXTURES = new URL('../fixtures/sources/', import.meta.url);

export function fixture<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8')) as T;
}

/** The recorded-format fixtures (LIVE-SOURCES.md shapes), and the recorded v1 day. */
export function recordedData(): FakeSourcesData {
  const kraken = fixture<{ result: Record<string, unknown> }>('kraken-ticker.json');
  const ohlc = fixture<{ result: { XXBTZUSD: Row[] } }>('kraken-ohlc.json');
  return {
    coinbaseTicker: fixture('coinbase-ticker.json'),
    coinbaseCandles: fixture('coinbase-candles.json'),
    coinbaseHourly: [],
    bitstampTicker: fixture('bitstamp-ticker.json'),
    bitstampOhlc: fixture<{ data: { ohlc: Obj[] } }>('bitstamp-ohlc.json').data.ohlc,
    bitstampHourly: [],
    krakenTicker: kraken.result.XXBTZUSD as Obj,
    krakenOhlc: ohlc.result.XXBTZUSD,
    krakenHourly: [],
    senticryptV2: fixture('senticrypt-v2-all.json'),
    fearGreed: fixture<{ data: Obj[] }>('fear-greed.json').data,
    senticryptV1: JSON.parse(readFileSync(new URL('../fixtures/senticrypt-v1-2021-07-07.json', import.meta.url), 'utf8')) as unknown[],
  };
}

// --- Builders: recorded-format payloads for a time range ------------------------------------

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/**
 * The price the builders give the minute starting at `ms` (floored to the minute):
 * 60000 + (minute number mod 600) + 0.5. Tests compute expected values with it.
 */
export function priceAt(ms: number): number {
  return 60000 + (Math.floor(ms / MINUTE) % 600) + 0.5;
}

/** The sentiment the builders give the UTC day of `ms`, in -1..1: ((day number mod 21) - 10) / 10. */
export function sentimentAt(ms: number): number {
  return ((Math.floor(ms / DAY) % 21) - 10) / 10;
}

/** The fear & greed value the builders give the UTC day of `ms`, 0..100: day number mod 101. */
export function fearGreedAt(ms: number): number {
  return Math.floor(ms / DAY) % 101;
}

/**
 * The close the builders give the hour starting at `ms` (floored to the hour): that of its last
 * minute, priceAt(hour + 59 min), as a real hourly candle closes with its last trade.
 */
export function hourlyCloseAt(ms: number): number {
  return priceAt(Math.floor(ms / HOUR) * HOUR + 59 * MINUTE);
}

/** Minute (or `step`) starts (epoch ms) with from <= t <= to, oldest first. */
function minutes(fromMs: number, toMs: number, step = MINUTE): number[] {
  const out: number[] = [];
  for (let t = Math.ceil(fromMs / step) * step; t <= toMs; t += step) out.push(t);
  return out;
}

/** The hourly variant of a minute builder: rows for the hours in range, close = hourlyCloseAt(t). */
function hourlyRows<T>(build: (from: number, to: number, price: (ms: number) => number, step: number) => T[], fromMs: number, toMs: number): T[] {
  return build(fromMs, toMs, hourlyCloseAt, HOUR);
}

/** Days (00:00 UTC, epoch ms) with from <= t <= to, oldest first. */
function days(fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let t = Math.ceil(fromMs / DAY) * DAY; t <= toMs; t += DAY) out.push(t);
  return out;
}

const fixed = (n: number, digits = 2) => n.toFixed(digits);

/** Coinbase 1-minute candles, newest first, numbers: [time s, low, high, open, close, volume]; close = priceAt(t). */
export function coinbaseCandles(fromMs: number, toMs: number, price = priceAt, step = MINUTE): Row[] {
  return minutes(fromMs, toMs, step)
    .reverse()
    .map((t) => {
      const close = price(t);
      return [t / 1000, close - 1, close + 1, close - 0.25, close, 0.5];
    });
}

/** A Coinbase ticker whose trade happened at `ms` (ISO time with 9 fractional digits). */
export function coinbaseTicker(ms: number, price = priceAt(ms)): Obj {
  const iso = new Date(ms).toISOString().replace('Z', '123456Z');
  return { ask: fixed(price + 0.01), bid: fixed(price), volume: '4916.94797396', trade_id: 1040406588, price: fixed(price), size: '0.00782662', time: iso, rfq_volume: '31.625279' };
}

/** Bitstamp 1-minute OHLC rows, oldest first, every field a string; close = priceAt(t). */
export function bitstampOhlc(fromMs: number, toMs: number, price = priceAt, step = MINUTE): Obj[] {
  return minutes(fromMs, toMs, step).map((t) => {
    const close = price(t);
    return { timestamp: String(t / 1000), open: fixed(close - 0.25), high: fixed(close + 1), low: fixed(close - 1), close: fixed(close), volume: '0.50000000' };
  });
}

/** A Bitstamp ticker at `ms` (timestamp in whole seconds, as a string). */
export function bitstampTicker(ms: number, price = priceAt(ms)): Obj {
  return {
    timestamp: String(Math.floor(ms / 1000)),
    open: fixed(price - 100), high: fixed(price + 100), low: fixed(price - 200), last: fixed(price),
    volume: '1277.88750357', vwap: fixed(price), bid: fixed(price), ask: fixed(price + 0.01),
    side: '1', open_24: fixed(price - 50), percent_change_24: '0.78', market_type: 'SPOT',
  };
}

/** Kraken 1-minute OHLC rows, oldest first: [time s, open, high, low, close, vwap, volume, count]; close = priceAt(t). */
export function krakenOhlc(fromMs: number, toMs: number, price = priceAt, step = MINUTE): Row[] {
  return minutes(fromMs, toMs, step).map((t) => {
    const close = price(t);
    return [t / 1000, fixed(close - 0.25, 1), fixed(close + 1, 1), fixed(close - 1, 1), fixed(close, 1), fixed(close, 1), '0.50000000', 7];
  });
}

/** The Kraken ticker entry (served under XXBTZUSD). */
export function krakenTicker(price: number): Obj {
  return {
    a: [fixed(price + 0.1, 1), '1', '1.000'], b: [fixed(price, 1), '2', '2.000'], c: [fixed(price, 1), '0.5'],
    v: ['1234.5', '2345.6'], p: [fixed(price, 1), fixed(price, 1)], t: [4995, 12404],
    l: [fixed(price - 500, 1), fixed(price - 900, 1)], h: [fixed(price + 500, 1), fixed(price + 900, 1)], o: fixed(price - 100, 1),
  };
}

/** SentiCrypt v2 all.json records for the UTC days in the range, oldest first; mean = sentimentAt(day). */
export function senticryptV2Days(fromMs: number, toMs: number, mean = sentimentAt): Obj[] {
  return days(fromMs, toMs).map((t) => ({
    date: new Date(t).toISOString().slice(0, 10),
    price: 29615.0, volume: 2004.0, score1: -0.5078, score2: 0.1192, score3: 0.1719, count: 12, mean: mean(t), sum: -0.8669,
  }));
}

/** alternative.me entries for the UTC days in the range, newest first, strings; value = fearGreedAt(day). */
export function fearGreedDays(fromMs: number, toMs: number, value = fearGreedAt): Obj[] {
  return days(fromMs, toMs)
    .reverse()
    .map((t, i) => {
      const v = value(t);
      const entry: Obj = { value: String(v), value_classification: v < 50 ? 'Fear' : 'Greed', timestamp: String(t / 1000) };
      if (i === 0) entry.time_until_update = '3599';
      return entry;
    });
}

/**
 * Data "about now": every price source has 1-minute history for the 25 h before `now` and hourly
 * candles for the 31 days before it, the current (open) minute and hour included (Kraken serves
 * only what it really serves), its ticker at `now`; the sentiment sources have the last
 * `sentimentDays` UTC days up to today's. Values follow priceAt / hourlyCloseAt / sentimentAt /
 * fearGreedAt.
 */
export function liveData(now: number, sentimentDays = 30): FakeSourcesData {
  const from = now - DAY - HOUR;
  const lastMinute = Math.floor(now / MINUTE) * MINUTE;
  const [hoursFrom, lastHour] = [now - 31 * DAY, Math.floor(now / HOUR) * HOUR];
  return {
    coinbaseTicker: coinbaseTicker(now - 1500),
    coinbaseCandles: coinbaseCandles(from, lastMinute),
    coinbaseHourly: hourlyRows(coinbaseCandles, hoursFrom, lastHour),
    bitstampTicker: bitstampTicker(now),
    bitstampOhlc: bitstampOhlc(from, lastMinute),
    bitstampHourly: hourlyRows(bitstampOhlc, hoursFrom, lastHour),
    krakenTicker: krakenTicker(priceAt(now)),
    krakenOhlc: krakenOhlc(from, lastMinute),
    krakenHourly: hourlyRows(krakenOhlc, hoursFrom, lastHour),
    senticryptV2: senticryptV2Days(now - sentimentDays * DAY, now),
    fearGreed: fearGreedDays(now - sentimentDays * DAY, now),
    senticryptV1: [],
  };
}

// --- The server ----------------------------------------------------------------------------

const COINBASE_GRANULARITIES = new Set([60, 300, 900, 3600, 21600, 86400]);

export class FakeSources {
  data: FakeSourcesData;
  readonly requests: LoggedRequest[] = [];
  private readonly overrides = new Map<string, FakeOverride>();
  private server!: Server;

  constructor(data: Partial<FakeSourcesData> = {}) {
    this.data = { ...recordedData(), ...data };
  }

  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /**
   * Base URLs for every source pointing here, and the sources to use, given explicitly
   * (default the live coinbase + senticrypt-v2): SENTIMENT_API_URL is set too, and set alone it
   * would select senticrypt-v1 for both metrics (the upgrade path). Merge into the app's env.
   */
  env(sources: { price?: string; sentiment?: string } = {}): Record<string, string> {
    const o = this.origin;
    return {
      PRICE_SOURCE: sources.price ?? 'coinbase',
      SENTIMENT_SOURCE: sources.sentiment ?? 'senticrypt-v2',
      COINBASE_API_URL: `${o}/coinbase`,
      BITSTAMP_API_URL: `${o}/bitstamp/api/v2`,
      KRAKEN_API_URL: `${o}/kraken/0/public`,
      SENTICRYPT_V2_API_URL: `${o}/senticrypt/v2`,
      FEAR_GREED_API_URL: `${o}/alternative`,
      SENTIMENT_API_URL: `${o}${PATHS.senticryptV1}`,
      // Loopback servers have no rate limit: unpaced, so specs stay fast (the pacing spec sets its own).
      UPSTREAM_MIN_INTERVAL_MS: '0',
    };
  }

  /** Answer `path` this way (for the next `times` requests, or until cleared). */
  override(path: FakePath, response: FakeOverride): this {
    this.overrides.set(path, response);
    return this;
  }

  clearOverrides(path?: FakePath): void {
    if (path === undefined) this.overrides.clear();
    else this.overrides.delete(path);
  }

  /** Requests logged for one path. */
  calls(path: FakePath): LoggedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query, headers: req.headers, at: Date.now() });

    const override = this.overrides.get(url.pathname);
    if (override) {
      if (override.times !== undefined && --override.times <= 0) this.overrides.delete(url.pathname);
      return this.answerOverride(res, override);
    }
    const json = (body: unknown, status = 200): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const d = this.data;
    switch (url.pathname) {
      case PATHS.coinbaseTicker:
      case PATHS.coinbaseCandles:
        // Coinbase refuses callers that do not say who they are.
        if (!req.headers['user-agent']) return json({ message: 'User-Agent header is required.' }, 400);
        if (url.pathname === PATHS.coinbaseTicker) return json(d.coinbaseTicker);
        return this.coinbaseCandles(query, json);
      case PATHS.bitstampTicker:
        return json(d.bitstampTicker);
      case PATHS.bitstampOhlc:
        return this.bitstampOhlc(query, json);
      case PATHS.krakenTicker:
        if (query.pair !== 'XBTUSD') return json({ error: ['EQuery:Unknown asset pair'] });
        return json({ error: [], result: { XXBTZUSD: d.krakenTicker } });
      case PATHS.krakenOhlc:
        return this.krakenOhlc(query, json);
      case PATHS.senticryptV2:
        return json(d.senticryptV2);
      case PATHS.fearGreed:
        return this.fearGreed(query, json);
      case PATHS.senticryptV1:
        return json(d.senticryptV1);
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  }

  private answerOverride(res: ServerResponse, o: FakeOverride): void {
    if (o.hang) return;
    if (o.redirect !== undefined) {
      res.writeHead(o.status ?? 302, { location: o.redirect, ...o.headers }).end();
      return;
    }
    const raw = o.raw ?? (o.body === undefined ? '' : JSON.stringify(o.body));
    res.writeHead(o.status ?? 200, { 'content-type': o.contentType ?? 'application/json', ...o.headers }).end(raw);
  }

  /** ?granularity=60 (or 3600 for hours)&start=ISO&end=ISO: rows start <= t <= end, newest first, at most 300, as Coinbase does. */
  private coinbaseCandles(q: Record<string, string>, json: (b: unknown, s?: number) => void): void {
    const granularity = Number(q.granularity ?? 60);
    if (!COINBASE_GRANULARITIES.has(granularity)) return json({ message: 'Unsupported granularity' }, 400);
    const start = q.start === undefined ? undefined : Date.parse(q.start) / 1000;
    const end = q.end === undefined ? undefined : Date.parse(q.end) / 1000;
    if (start !== undefined && end !== undefined) {
      if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) return json({ message: 'Invalid start or end' }, 400);
      if ((end - start) / granularity > 300) {
        return json({ message: 'granularity too small for the requested time range. Count of aggregations requested exceeds 300' }, 400);
      }
    }
    const rows = (granularity === 3600 ? this.data.coinbaseHourly : this.data.coinbaseCandles).filter((r) => {
      const t = r[0] as number;
      return (start === undefined || t >= start) && (end === undefined || t <= end);
    });
    json(rows.slice(0, 300));
  }

  /** ?step=60 (or 3600 for hours)&limit=N&start=s[&end=s]: rows from start, oldest first, at most limit (1-1000). */
  private bitstampOhlc(q: Record<string, string>, json: (b: unknown, s?: number) => void): void {
    const limit = Number(q.limit);
    const step = Number(q.step);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000 || !Number.isInteger(step)) {
      return json({ errors: [{ field: 'limit', message: 'Invalid limit or step', code: 'invalid_value' }] }, 400);
    }
    const start = q.start === undefined ? undefined : Number(q.start);
    const end = q.end === undefined ? undefined : Number(q.end);
    let rows = (step === 3600 ? this.data.bitstampHourly : this.data.bitstampOhlc).filter((r) => {
      const t = Number(r.timestamp);
      return (start === undefined || t >= start) && (end === undefined || t <= end);
    });
    rows = start === undefined ? rows.slice(-limit) : rows.slice(0, limit);
    json({ data: { pair: 'BTC/USD', ohlc: rows } });
  }

  /** ?pair=XBTUSD&interval=1 (or 60 for hours)&since=s: the newest 720 rows only (the last still open), those after since. */
  private krakenOhlc(q: Record<string, string>, json: (b: unknown, s?: number) => void): void {
    if (q.pair !== 'XBTUSD') return json({ error: ['EQuery:Unknown asset pair'] });
    const since = q.since === undefined ? undefined : Number(q.since);
    const served = (q.interval === '60' ? this.data.krakenHourly : this.data.krakenOhlc).slice(-720).filter((r) => since === undefined || (r[0] as number) > since);
    const committed = served.length > 1 ? (served[served.length - 2][0] as number) : since ?? 0;
    json({ error: [], result: { XXBTZUSD: served, last: committed } });
  }

  /** ?limit=N (0 = all)&format=json: newest first. `date_format` replaces timestamps with dates, as the real API does. */
  private fearGreed(q: Record<string, string>, json: (b: unknown, s?: number) => void): void {
    const limit = q.limit === undefined ? 1 : Number(q.limit);
    let data = limit === 0 ? this.data.fearGreed : this.data.fearGreed.slice(0, limit);
    if (q.date_format !== undefined) {
      data = data.map((e) => ({ ...e, timestamp: new Date(Number(e.timestamp) * 1000).toISOString().slice(0, 10) }));
    }
    json({ name: 'Fear and Greed Index', data, metadata: { error: null } });
  }
}

// --- A client for provider unit specs --------------------------------------------------------

/** The shared HTTP client as providers get it, with test-sized timeouts and retries. */
export function testSourceHttp(overrides: Partial<SourceHttpOptions> = {}): SourceHttpClient {
  return new SourceHttpClient(new HttpService(axios.create()), {
    timeoutMs: 2000,
    retries: 1,
    retryBaseMs: 1,
    retryAfterMaxMs: 1000,
    userAgent: 'is-bitcoin-lit/test (+https://example.test)',
    maxRedirects: 3,
    // No pacing unless a spec asks for it (the pacing spec sets its own interval).
    minIntervalMs: 0,
    ...overrides,
  });
}
