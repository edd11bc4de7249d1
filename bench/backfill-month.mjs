// `npm run bench:backfill`: how long a first start takes to hold a full month (BACKFILL_HOURS=720,
// the default), measured on the production build (dist/) against the local Redis, with every
// venue served by one loopback server in the providers' recorded formats (LIVE-SOURCES.md):
// Coinbase candles (≤ 300 a call), Bitstamp OHLC (≤ 1,000), Kraken OHLC (newest 720 rows),
// SentiCrypt v2's all.json.
//
// For each price venue, and for the three at once (one app per venue in this process, as they
// would run side by side): the first run of an empty series (poll + 1-minute backfill of the last
// 24 h + hourly backfill of the month), timed from the call to the stored report,
// - paced: each venue's own spacing under its published limit (what a real first start costs,
//   the network aside): Kraken's 1 s between calls dominates;
// - unpaced (UPSTREAM_MIN_INTERVAL_MS=0): the service's own work (fetch on loopback, validate, store).
// Median of BENCH_ROUNDS (default 3) rounds, each into a fresh key prefix, deleted afterwards.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { deleteKeys } from './delete-keys.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const dist = (path) => import(pathToFileURL(join(root, 'dist', path)).href);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const VENUES = ['coinbase', 'bitstamp', 'kraken'];

// ---------------------------------------------------------------------------------------------
// The loopback venues: 26 h of minutes and 31 days of hours before now, generated per request.

const price = (t) => 60000 + (Math.floor(t / MINUTE) % 600) + 0.5;
const steps = (from, to, step) => {
  const out = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) out.push(t);
  return out;
};
/** The rows a venue "has" at this step (1 min: 26 h, 1 h: 31 days), oldest first, the open one included. */
const history = (step) => steps(Date.now() - (step === MINUTE ? 26 * HOUR : 31 * DAY), Date.now(), step);

function venueServer() {
  return createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const q = Object.fromEntries(url.searchParams);
    const json = (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const now = Date.now();
    switch (url.pathname) {
      case '/coinbase/products/BTC-USD/ticker':
        return json({ price: price(now).toFixed(2), time: new Date(now - 1000).toISOString(), trade_id: 1, size: '0.1', bid: '1', ask: '1', volume: '1' });
      case '/coinbase/products/BTC-USD/candles': {
        const step = Number(q.granularity) * 1000;
        const [start, end] = [Date.parse(q.start), Date.parse(q.end)];
        const rows = history(step).filter((t) => t >= start && t <= end).reverse().slice(0, 300);
        return json(rows.map((t) => [t / 1000, price(t) - 1, price(t) + 1, price(t), price(t), 0.5]));
      }
      case '/bitstamp/api/v2/ticker/btcusd/':
        return json({ timestamp: String(Math.floor(now / 1000)), last: price(now).toFixed(2), open: '1', high: '1', low: '1', volume: '1', vwap: '1', bid: '1', ask: '1' });
      case '/bitstamp/api/v2/ohlc/btcusd/': {
        const step = Number(q.step) * 1000;
        const rows = history(step).filter((t) => t >= Number(q.start) * 1000).slice(0, Number(q.limit));
        const s = (n) => n.toFixed(2);
        return json({ data: { pair: 'BTC/USD', ohlc: rows.map((t) => ({ timestamp: String(t / 1000), open: s(price(t)), high: s(price(t) + 1), low: s(price(t) - 1), close: s(price(t)), volume: '0.5' })) } });
      }
      case '/kraken/0/public/Ticker':
        return json({ error: [], result: { XXBTZUSD: { c: [price(now).toFixed(1), '0.5'] } } });
      case '/kraken/0/public/OHLC': {
        const rows = history(Number(q.interval) * MINUTE).slice(-720).filter((t) => t > Number(q.since) * 1000);
        return json({ error: [], result: { XXBTZUSD: rows.map((t) => [t / 1000, '1', '1', '1', price(t).toFixed(1), '1', '0.5', 7]), last: 0 } });
      }
      case '/senticrypt/v2/all.json':
        return json(steps(now - 40 * DAY, now, DAY).map((t) => ({ date: new Date(t).toISOString().slice(0, 10), mean: ((t / DAY) % 21) / 10 - 1, count: 12 })));
      default:
        res.writeHead(404).end();
    }
  });
}

// ---------------------------------------------------------------------------------------------

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main() {
  const { createApp } = await dist('app.factory.js');
  const { SentimentIngestService } = await dist('ingest/sentiment-ingest.service.js');
  const server = venueServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const redis = new Redis(REDIS_URL);
  const base = `bench:month:${randomBytes(4).toString('hex')}`;
  const env = (prefix, venue, paced) => ({
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    PRICE_SOURCE: venue,
    SENTIMENT_SOURCE: 'senticrypt-v2',
    COINBASE_API_URL: `${origin}/coinbase`,
    BITSTAMP_API_URL: `${origin}/bitstamp/api/v2`,
    KRAKEN_API_URL: `${origin}/kraken/0/public`,
    SENTICRYPT_V2_API_URL: `${origin}/senticrypt/v2`,
    INGEST_SCHEDULE_ENABLED: 'false',
    INGEST_ON_STARTUP: 'false',
    LOG_LEVEL: 'error',
    ...(paced ? {} : { UPSTREAM_MIN_INTERVAL_MS: '0' }),
  });
  /** Boots one app per venue, then times each venue's first run, all started at once. */
  async function firstStart(venues, paced, round) {
    const apps = [];
    try {
      for (const venue of venues) {
        const app = await createApp(env(`${base}:${venues.length}:${round}:${paced ? 'p' : 'u'}:${venue}`, venue, paced));
        await app.init();
        apps.push(app);
      }
      const t0 = performance.now();
      const runs = await Promise.all(
        apps.map(async (app, i) => {
          const ingest = app.get(SentimentIngestService);
          const [price, sentiment] = await Promise.all([ingest.run(venues[i]), ingest.run('senticrypt-v2')]);
          const ms = performance.now() - t0;
          if (price.backfill?.error || price.hourlyBackfill?.error || !price.hourlyBackfill) throw new Error(`${venues[i]}: backfill failed: ${JSON.stringify({ backfill: price.backfill, hourly: price.hourlyBackfill })}`);
          return { venue: venues[i], ms, attempts: price.attempts, stored: price.stored, hours: price.hourlyBackfill.stored, days: sentiment.stored };
        }),
      );
      return { ms: performance.now() - t0, runs };
    } finally {
      for (const app of apps) await app.close();
    }
  }

  const results = { startedAt: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model.trim(), node: process.version }, rows: [] };
  try {
    for (const paced of [true, false]) {
      for (const venues of process.env.BENCH_ONLY_ALL ? [VENUES] : [...VENUES.map((v) => [v]), VENUES]) {
        const rounds = [];
        for (let round = 0; round < ROUNDS; round++) {
          console.error(`bench: first start, ${venues.join(' + ')}, ${paced ? 'paced' : 'unpaced'}, round ${round + 1}/${ROUNDS} …`);
          rounds.push(await firstStart(venues, paced, round));
        }
        const last = rounds.at(-1);
        results.rows.push({
          what: `${venues.join(' + ')}${venues.length > 1 ? ' at once' : ''}`,
          paced,
          medianMs: median(rounds.map((r) => r.ms)),
          maxMs: Math.max(...rounds.map((r) => r.ms)),
          detail: last.runs.map((r) => `${r.venue}: ${r.attempts} calls, ${r.stored} samples (${r.hours} h + minutes), ${Math.round(r.ms)} ms`).join('; '),
        });
      }
    }
  } finally {
    await deleteKeys(redis, base);
    await redis.quit();
    server.close();
  }

  const head = ['first start to a full month', 'pacing', 'median', 'max', 'last round'];
  const cells = results.rows.map((r) => [r.what, r.paced ? 'published limits' : 'off', `${(r.medianMs / 1000).toFixed(2)} s`, `${(r.maxMs / 1000).toFixed(2)} s`, r.detail]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (row) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(`\nis-bitcoin-lit first-start bench — ${results.startedAt}, ${results.machine.cpus} × ${results.machine.cpu}, Node ${results.machine.node}, median of ${ROUNDS}\n`);
  console.log([line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n'));
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/backfill-month-latest.json'), `${JSON.stringify(results, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
