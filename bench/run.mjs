// `npm run bench`: measures the production build (dist/, built by the npm script) against the
// local Redis and prints one table, also written as JSON to bench/results/.
//
// 1. HTTP: the service (`npm run start:prod`'s command, NODE_ENV=production, default config) runs as a child
//    process fed by a loopback upstream serving the recorded 24 h payload; wrk (1 thread, 64
//    connections; autocannon in its own process when wrk is not installed, or with
//    BENCH_HTTP_CLIENT=autocannon) loads the cached GET /is-bitcoin-lit and a bare Node `http`
//    server (also its own process) returning the same bytes, in alternating rounds; medians over
//    rounds, and each server's CPU time per request. Same run, same machine. Two more bare
//    servers are printed as context (not the floor): one after a few hundred ordinary requests,
//    and one sending the hit's own headers (what the header set itself costs).
// 2. In-process (a Nest application context built from dist/ in this process, own key prefix):
//    cache-miss summary computations, ingest of the 24 h payload handed over as text in memory
//    (so the HTTP download is excluded; JSON decoding and validation are not), backfill of synthetic samples through
//    TimeseriesService.add.
// 3. History: 30 days of 30 s price samples in a service of its own (createApp, in this process,
//    own key prefix, one price series), GET /series/price in five shapes, median of 30 sequential queries, each
//    against its floor measured alternately in the same loop: the bare range the query stands
//    for (TS.RANGE … AGGREGATION on the raw series; on plain Redis the portable backend's one
//    script call); the 3 h shape again after 300 more queries (steady state). With BENCH_NATIVE_REDIS_URL (Redis 8 / RedisTimeSeries) the same on it, and
//    the portable figures as a ratio of the native ones. Then the 3 h shape again on the default
//    three venues (the composite price) against their three bare ranges sent together.
// 4. The live providers' poll with nothing new (coinbase ticker on a loopback fake, in-process,
//    the default three venues configured so the summary refresh after it reads them all).
// 5. Peak RSS of the service process (VmHWM from /proc) over the whole run.
//
// Every key lives under a random `bench:<hex>` prefix and is deleted at the end.
// Knobs: BENCH_DURATION_S (load seconds per target and round, default 4), BENCH_ROUNDS
// (default 5), BENCH_BACKFILL (samples, default 1,000,000), BENCH_HTTP_CLIENT (wrk or
// autocannon), BENCH_NATIVE_REDIS_URL, REDIS_URL.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { freePort, waitFor } from '../test/support/shared.mjs';
import { deleteKeys } from './delete-keys.mjs';

/** POST /refresh needs a bearer token (REFRESH_TOKEN); the bench's service gets this one. */
const BENCH_TOKEN = 'bench-refresh-token-0123456789';

const root = fileURLToPath(new URL('..', import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP_S = 5;
const BACKFILL = Number(process.env.BENCH_BACKFILL ?? 1_000_000);
const CONNECTIONS = 64;
const NATIVE_REDIS_URL = process.env.BENCH_NATIVE_REDIS_URL;
/** wrk when installed (a C client: less of the two cores goes to the client), else autocannon. */
const HTTP_CLIENT = process.env.BENCH_HTTP_CLIENT ?? (hasWrk() ? 'wrk' : 'autocannon');
const HISTORY_QUERIES = 30;
/** Queries (each with its floor) before the steady-state 3 h figure. */
const STEADY_WARMUP = 300;
const LIVE_POLLS = 100;
const MISS_RUNS = 2000;
const INGEST_ROUNDS = 10;
const INCREMENTAL_IN_A_ROW = 100;
const prefix = `bench:${randomBytes(4).toString('hex')}`;
const fixturePath = join(root, 'test/fixtures/senticrypt-v1-2021-07-07.json');
const autocannonBin = join(root, 'node_modules/autocannon/autocannon.js');
const execFileP = promisify(execFile);
const dist = (path) => import(pathToFileURL(join(root, 'dist', path)).href);

const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));

// ---------------------------------------------------------------------------------------------
// helpers

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const median = (values) => quantile(values, 0.5);

async function timed(fn) {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
function httpGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    request(url, { agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}

function hasWrk() {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return err.status === 1; // wrk --version prints its usage and exits 1
  }
}

/** Loads `url` for `seconds` with HTTP_CLIENT; requests/s and latency percentiles (ms). */
function load(url, seconds) {
  return HTTP_CLIENT === 'wrk' ? wrk(url, seconds) : cannon(url, seconds);
}

/** wrk, 1 thread, 64 connections, as issue 16 measured. */
async function wrk(url, seconds) {
  const { stdout } = await execFileP('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', url]);
  const ms = (text) => {
    const [, n, unit] = /^([\d.]+)(us|ms|s)$/.exec(text);
    return Number(n) * { us: 0.001, ms: 1, s: 1000 }[unit];
  };
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  return {
    rps: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)[1])),
    p50: ms(/\s50%\s+(\S+)/.exec(stdout)[1]),
    p99: ms(/\s99%\s+(\S+)/.exec(stdout)[1]),
    requests: Number(/(\d+) requests in/.exec(stdout)[1]),
    errors: socketErrors ? socketErrors.slice(1).reduce((n, x) => n + Number(x), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0),
  };
}

/** autocannon in its own process, 64 connections; returns requests/s and latency percentiles (ms). */
async function cannon(url, seconds) {
  const { stdout } = await execFileP(process.execPath, [autocannonBin, '-c', String(CONNECTIONS), '-d', String(seconds), '-j', url], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const r = JSON.parse(stdout);
  return {
    rps: Math.round(r.requests.total / r.duration),
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

/** CPU time (user + system) a process has used so far, in ms (clock ticks are 10 ms on Linux). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function peakRssMb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const redis = new Redis(REDIS_URL);
  const tmp = mkdtempSync(join(tmpdir(), 'is-bitcoin-lit-bench-'));
  const fixtureText = readFileSync(fixturePath, 'utf8');
  const fixture = JSON.parse(fixtureText);
  const results = { startedAt: new Date().toISOString() };
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
  results.machine = { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, redis: redisVersion };
  let service;
  try {
    // --- loopback upstream + the service --------------------------------------------------
    const upstream = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(fixtureText));
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    upstream.unref();
    const port = await freePort();
    // Exactly `npm run start:prod` (node flags included), minus npm (and its `exec node`) in between.
    const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['start:prod'].split(/\s+/);
    const startArgs = script.slice(script.indexOf('node') + 1);
    service = spawn(process.execPath, startArgs, {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        NODE_ENV: 'production',
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL,
        REDIS_KEY_PREFIX: `${prefix}:svc`,
        SENTIMENT_API_URL: `http://127.0.0.1:${upstream.address().port}/v1/bitcoin.json`,
        LOG_LEVEL: 'warn',
        REFRESH_TOKEN: BENCH_TOKEN,
        THROTTLE_LIMIT: '0', // measures throughput, not the per-client rate limit
      },
    });
    children.push(service);
    const url = `http://127.0.0.1:${port}/is-bitcoin-lit`;
    await waitFor('the service to serve the summary', () => httpGet(url).then((r) => r.status === 200, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    // A plain POST /refresh joins the startup run in progress: once it answers, the whole
    // payload is stored and the cache primed (a GET during that run may see part of it).
    await new Promise((resolve, reject) => request(`http://127.0.0.1:${port}/refresh`, { method: 'POST', agent, headers: { authorization: `Bearer ${BENCH_TOKEN}` } }, (res) => res.resume().on('end', resolve)).on('error', reject).end());
    await httpGet(url); // the first GET teaches the fast path the URL; the second is a hit
    const { body, headers: hitHeaders } = await httpGet(url);
    if (hitHeaders['x-cache'] !== 'HIT') throw new Error('the second GET of the summary was not a cache hit');

    // --- cached GET: the service and the bare server with the same bytes, interleaved --------
    // Both run side by side; rounds alternate which goes first, and each figure is the median
    // over rounds, so a slow moment of the (shared) machine does not land on one side only.
    const bodyFile = join(tmp, 'body.json');
    writeFileSync(bodyFile, body);
    // The hit's own headers (those Node adds itself left out), request id included, for the context server.
    const headersFile = join(tmp, 'headers.json');
    const nodeAdds = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);
    const hitHeaderList = Object.entries(hitHeaders).filter(([name]) => !nodeAdds.has(name)).flat();
    writeFileSync(headersFile, JSON.stringify(hitHeaderList));
    const startBare = async (...args) => {
      const child = spawn(process.execPath, [join(root, 'bench/bare-server.mjs'), bodyFile, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      const [portLine] = await once(child.stdout, 'data');
      return { child, url: `http://127.0.0.1:${String(portLine).trim()}/is-bitcoin-lit` };
    };
    const { child: bare, url: bareUrl } = await startBare();
    // Context, not the floor: the same bare server after a few hundred ordinary requests (see bare-server.mjs).
    const { child: used, url: usedUrl } = await startBare('--after-traffic');
    // Context too: the bare server sending the service's headers (same bytes but the request id).
    const { child: headed, url: headedUrl } = await startBare('--headers', headersFile);
    console.error(`bench: cached GET, ${HTTP_CLIENT}, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${DURATION_S} s per target …`);
    // Warm-up, the same for both: after 2 s the service's first round still ran at 60-70 % of
    // the later ones (its code is still being optimized); after 5 s it no longer stands out.
    await load(url, WARMUP_S);
    await load(bareUrl, WARMUP_S);
    await load(usedUrl, WARMUP_S);
    await load(headedUrl, WARMUP_S);
    const rounds = { service: [], bare: [], used: [], headed: [] };
    const targets = [
      ['service', url, service.pid],
      ['bare', bareUrl, bare.pid],
      ['used', usedUrl, used.pid],
      ['headed', headedUrl, headed.pid],
    ];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, target, pid] of round % 2 ? [...targets].reverse() : targets) {
        const cpuBefore = cpuMs(pid);
        const run = await load(target, DURATION_S);
        run.cpuUsPerRequest = ((cpuMs(pid) - cpuBefore) * 1000) / run.requests;
        rounds[name].push(run);
      }
    }
    const hit = await httpGet(url);
    if (hit.headers['x-cache'] !== 'HIT' || !hit.body.equals(body)) throw new Error('the service did not serve the cached body');
    bare.kill('SIGTERM');
    used.kill('SIGTERM');
    headed.kill('SIGTERM');
    const summarize = (runs) => ({
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      p99Max: Math.max(...runs.map((r) => r.p99)),
      cpuUsPerRequest: median(runs.map((r) => r.cpuUsPerRequest)),
      errors: runs.reduce((n, r) => n + r.errors + r.non2xx, 0),
      rounds: runs,
    });
    const svc = summarize(rounds.service);
    const bareResult = summarize(rounds.bare);
    const usedResult = summarize(rounds.used);
    const headedResult = summarize(rounds.headed);
    if (svc.errors || bareResult.errors || usedResult.errors || headedResult.errors) {
      throw new Error(
        `errors under load: service ${svc.errors}, bare ${bareResult.errors}, bare after traffic ${usedResult.errors}, bare with the service's headers ${headedResult.errors}`,
      );
    }
    // Each round pairs a service run with a bare run at about the same time: the ratio is the
    // median of the rounds' ratios.
    const roundRatios = rounds.service.map((r, i) => r.rps / rounds.bare[i].rps);
    results.http = {
      client: HTTP_CLIENT,
      service: svc,
      bare: bareResult,
      ratio: median(roundRatios),
      roundRatios,
      usedBare: usedResult,
      usedRatio: median(rounds.used.map((r, i) => r.rps / rounds.bare[i].rps)),
      ratioToUsed: median(rounds.service.map((r, i) => r.rps / rounds.used[i].rps)),
      headedBare: headedResult,
      headedRatio: median(rounds.headed.map((r, i) => r.rps / rounds.bare[i].rps)),
      ratioToHeaded: median(rounds.service.map((r, i) => r.rps / rounds.headed[i].rps)),
      bodyBytes: body.length,
      headedHeaderCount: hitHeaderList.length / 2,
    };

    // --- in-process: Nest application context over dist/ ----------------------------------
    const { AppModule } = await dist('app.module.js');
    const { SentimentIngestService } = await dist('ingest/sentiment-ingest.service.js');
    const { SeriesRepository } = await dist('series/series.repository.js');
    const { SummaryService } = await dist('summary/summary.service.js');
    const { TimeseriesService } = await dist('timeseries/timeseries.service.js');
    const { RedisKeys } = await dist('redis/redis-keys.service.js');
    const { SourceHttpClient } = await dist('sources/source-http.service.js');
    const ctxPrefix = `${prefix}:ctx`;
    const ctx = await NestFactory.createApplicationContext(
      AppModule.forRoot({
        NODE_ENV: 'production',
        REDIS_URL,
        REDIS_KEY_PREFIX: ctxPrefix,
        SENTIMENT_API_URL: 'http://127.0.0.1:9/unused', // replaced by the in-memory payload below
        INGEST_SCHEDULE_ENABLED: 'false',
        INGEST_ON_STARTUP: 'false',
        LOG_LEVEL: 'warn',
      }),
      { logger: ['error', 'warn'] },
    );
    try {
      // The v1 feed (SENTIMENT_API_URL set alone): one source for both series, as before.
      const v1 = ctx.get(SentimentIngestService);
      const ingest = { run: (options) => v1.run('senticrypt-v1', options), onModuleInit: () => ctx.get(SeriesRepository).ensureStorage() };
      const summary = ctx.get(SummaryService);
      const timeseries = ctx.get(TimeseriesService);
      const keys = ctx.get(RedisKeys);
      // The download, replaced by the payload text in memory; fetch() still decodes it.
      let payloadText = fixtureText;
      ctx.get(SourceHttpClient).fetchText = async () => payloadText;
      results.backend = timeseries.kind;

      // Ingest: a fresh prefix per round (first run into empty series), the same payload again
      // (incremental: nothing newer), again with full=true (every sample a duplicate), then the
      // payload plus one new record.
      console.error('bench: ingest …');
      const newest = fixture.reduce((max, r) => (r.timestamp > max.timestamp ? r : max));
      const plusOneText = JSON.stringify([...fixture, { ...newest, timestamp: newest.timestamp + 30 }]);
      const ingestMs = { first: [], rerun: [], rerunFull: [], incremental: [] };
      for (let round = 0; round < INGEST_ROUNDS; round++) {
        await deleteKeys(redis, ctxPrefix);
        await ingest.onModuleInit();
        payloadText = fixtureText;
        const firstRun = await timed(() => ingest.run());
        if (firstRun.result.stored !== 2 * fixture.length) throw new Error(`first run stored ${firstRun.result.stored}`);
        ingestMs.first.push(firstRun.ms);
        ingestMs.rerun.push((await timed(() => ingest.run())).ms);
        const full = await timed(() => ingest.run({ full: true }));
        if (full.result.duplicates !== 2 * fixture.length) throw new Error(`full re-run found ${full.result.duplicates} duplicates`);
        ingestMs.rerunFull.push(full.ms);
        payloadText = plusOneText;
        const incremental = await timed(() => ingest.run());
        if (incremental.result.stored !== 2) throw new Error(`incremental run stored ${incremental.result.stored}`);
        ingestMs.incremental.push(incremental.ms);
      }
      // The same incremental run 100 times in a row, one more record each time: how much of
      // the figure above is code that the heavier runs around it left cold.
      const consecutive = Array.from({ length: INCREMENTAL_IN_A_ROW }, (_, i) =>
        JSON.stringify([...fixture, { ...newest, timestamp: newest.timestamp + 60 * (i + 1) }]),
      );
      ingestMs.incrementalInARow = [];
      for (const text of consecutive) {
        payloadText = text;
        const run = await timed(() => ingest.run());
        if (run.result.stored !== 2) throw new Error(`incremental run stored ${run.result.stored}`);
        ingestMs.incrementalInARow.push(run.ms);
      }
      results.ingest = Object.fromEntries(
        Object.entries(ingestMs).map(([k, v]) => [k, { median: median(v), min: Math.min(...v), max: Math.max(...v), runs: v }]),
      );

      // Cache miss: SummaryService.compute() in-process (what a GET runs when neither the
      // in-process copy nor Redis has the summary: anchor + two aggregated ranges over 24 h of
      // data). Not over HTTP: the service's in-process copy would hide a deleted Redis key.
      console.error('bench: cache-miss computations …');
      for (let i = 0; i < 200; i++) await summary.compute(); // warm-up
      const missMs = [];
      for (let i = 0; i < MISS_RUNS; i++) missMs.push((await timed(() => summary.compute())).ms);
      results.missCompute = { p50: quantile(missMs, 0.5), p99: quantile(missMs, 0.99), runs: MISS_RUNS };

      // Backfill: synthetic samples, one every second, into an empty series.
      console.error(`bench: backfill of ${BACKFILL.toLocaleString('en')} samples …`);
      await deleteKeys(redis, ctxPrefix);
      await ingest.onModuleInit();
      const start = Date.UTC(2021, 5, 1);
      const samples = Array.from({ length: BACKFILL }, (_, i) => ({ timestamp: start + i * 1000, value: 30000 + (i % 1000) / 100 }));
      const backfill = await timed(() => timeseries.add(keys.series('price', 'senticrypt-v1'), samples));
      if (backfill.result.stored !== BACKFILL) throw new Error(`backfill stored ${backfill.result.stored}`);
      results.backfill = { samples: BACKFILL, ms: backfill.ms, perSecond: BACKFILL / (backfill.ms / 1000) };
    } finally {
      await ctx.close();
    }

    // --- history: /series over 30 days of 30 s samples, against the bare range ---------------
    console.error('bench: history (portable backend on REDIS_URL) …');
    results.history = { portable: await history(REDIS_URL, `${prefix}:hist`) };
    console.error('bench: history, composite price of three venues …');
    results.history.composite = await history(REDIS_URL, `${prefix}:comp`, true);
    if (NATIVE_REDIS_URL) {
      console.error('bench: history (BENCH_NATIVE_REDIS_URL) …');
      const native = new Redis(NATIVE_REDIS_URL);
      try {
        results.history.native = await history(NATIVE_REDIS_URL, `${prefix}:hist`);
      } finally {
        await deleteKeys(native, prefix);
        await native.quit();
      }
    }

    // --- the live providers' poll with nothing new ---------------------------------------
    console.error('bench: live poll (coinbase ticker, nothing new) …');
    results.livePoll = await livePoll(`${prefix}:live`);

    results.serviceRssMb = peakRssMb(service.pid);
  } finally {
    if (service && service.exitCode === null) {
      service.kill('SIGTERM');
      await once(service, 'exit');
    }
    await deleteKeys(redis, prefix);
    await redis.quit();
    rmSync(tmp, { recursive: true, force: true });
    agent.destroy();
  }

  report(results);
}

// ---------------------------------------------------------------------------------------------

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The shapes of issue 16: name, span, bucket, aggregation. */
const SHAPES = [
  ['3 h @ 1 h', 3 * HOUR_MS, '1h', 'avg'],
  ['24 h @ 5 min', DAY_MS, '5m', 'avg'],
  ['7 d @ 1 h max', 7 * DAY_MS, '1h', 'max'],
  ['30 d @ 1 h', 30 * DAY_MS, '1h', 'avg'],
  ['30 d @ 1 d', 30 * DAY_MS, '1d', 'avg'],
];
const BUCKET_MS = { '1h': HOUR_MS, '5m': 300_000, '1d': DAY_MS };

/**
 * GET /series/price of a service on `redisUrl` (createApp, default configuration, this
 * process), over 30 days of 30 s samples, against the bare range each query stands for:
 * TS.RANGE … AGGREGATION on the raw series, i.e. the backend's own range call (one script call
 * on plain Redis). Queries and floor calls alternate, sequentially; medians of HISTORY_QUERIES.
 * By default one price series (the v1 feed's: the shapes are one series). With
 * `composite`, the default three venues (PRICE_SOURCE=coinbase,kraken,bitstamp), 3 h @ 1 h only:
 * the composite reads each venue's series and takes the median per bucket, so its floor is the
 * three bare ranges sent together.
 */
/** Every timed query must be a real answer: a 429 or an error is cheap and would flatter the figure. */
function ok(answer, name) {
  if (answer.status !== 200) throw new Error(`GET /series/price (${name}) answered ${answer.status}`);
}

/** HISTORY_QUERIES queries of `url`, each followed by its floor: the medians of both, in ms. */
async function alternate(url, floor, name) {
  const httpMs = [];
  const floorMs = [];
  for (let i = 0; i < HISTORY_QUERIES; i++) {
    const got = await timed(() => httpGet(url));
    ok(got.result, name);
    httpMs.push(got.ms);
    floorMs.push((await timed(floor)).ms);
  }
  return { httpMs: median(httpMs), floorMs: median(floorMs) };
}

async function history(redisUrl, keyPrefix, composite = false) {
  const { createApp } = await dist('app.factory.js');
  const { SeriesRepository } = await dist('series/series.repository.js');
  const { TimeseriesService } = await dist('timeseries/timeseries.service.js');
  const app = await createApp({
    NODE_ENV: 'production',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    ...(composite
      ? { PRICE_SOURCE: 'coinbase,kraken,bitstamp', SENTIMENT_SOURCE: 'senticrypt-v2' }
      : { SENTIMENT_API_URL: 'http://127.0.0.1:9/unused' }),
    INGEST_SCHEDULE_ENABLED: 'false',
    INGEST_ON_STARTUP: 'false',
    LOG_LEVEL: 'warn',
    // ~500 queries in a few seconds from one client: the per-client limit (300 a minute by
    // default) would answer most of the steady-state ones 429. Still counted, as in production.
    THROTTLE_LIMIT: '1000000',
  });
  try {
    const timeseries = app.get(TimeseriesService);
    const repository = app.get(SeriesRepository);
    await repository.ensureStorage();
    const keys = repository.defs('price').map((def) => def.key);
    if (keys.length !== (composite ? 3 : 1)) throw new Error(`the history service has ${keys.length} price series`);
    const end = Date.UTC(2021, 6, 7, 17, 25, 30);
    const n = 30 * 2880;
    // Venues 1 $ apart: the composite's median is the middle venue's bucket.
    for (const [v, key] of keys.entries()) {
      const samples = Array.from({ length: n }, (_, i) => ({
        timestamp: end - (n - 1 - i) * 30_000,
        value: Math.round((30_000 + v + 500 * Math.sin(i / 50) + (i % 7) / 3) * 100) / 100,
      }));
      await timeseries.add(key, samples);
    }
    await app.listen(0, '127.0.0.1');
    const base = await app.getUrl();
    const shapes = [];
    for (const [name, span, bucket, aggregation] of composite ? SHAPES.slice(0, 1) : SHAPES) {
      const from = end - span;
      const url = `${base}/series/price?from=${from}&to=${end}&bucket=${bucket}&aggregation=${aggregation}`;
      const rangeOf = (key) => timeseries.range({ key, from, to: end, aggregation: { type: aggregation, bucketMs: BUCKET_MS[bucket] } });
      const floor = () => Promise.all(keys.map(rangeOf));
      let answer;
      for (let i = 0; i < 3; i++) {
        answer = await httpGet(url);
        await floor();
      }
      // The service must give the bare range's answer (up to the rounding of sums folded from
      // compactions); the composite's, the middle venue's.
      const expected = (await floor())[keys.length === 3 ? 1 : 0];
      const points = JSON.parse(answer.body.toString());
      const same =
        answer.status === 200 &&
        points.length === expected.length &&
        expected.every((s, i) => points[i].time === new Date(s.timestamp).toISOString() && Math.abs(points[i].value - s.value) <= 1e-9 * Math.abs(s.value));
      if (!same) throw new Error(`GET /series/price (${name}) differs from the bare range`);
      shapes.push({ name, points: points.length, source: answer.headers['x-series-source'], ...(await alternate(url, floor, name)) });
    }
    // The first shape again once its code is warm, as in a service that has answered many
    // queries: the figures above are the first 33 queries of each shape, much of their cost
    // V8 compiling and optimizing the request path (measured: ~0.5 ms added warm vs 1-2 cold).
    let steady;
    if (!composite) {
      const [name, span, bucket, aggregation] = SHAPES[0];
      const from = end - span;
      const url = `${base}/series/price?from=${from}&to=${end}&bucket=${bucket}&aggregation=${aggregation}`;
      const floor = () => timeseries.range({ key: keys[0], from, to: end, aggregation: { type: aggregation, bucketMs: BUCKET_MS[bucket] } });
      for (let i = 0; i < STEADY_WARMUP; i++) {
        ok(await httpGet(url), name);
        await floor();
      }
      steady = { name, ...(await alternate(url, floor, name)) };
    }
    // The 30-day shape as a browser asks for it (Accept-Encoding: gzip, …), alternating with the
    // plain query: what compression adds to the answer's time, and what it saves on the wire.
    let compressed;
    if (!composite) {
      const [name, span, bucket, aggregation] = SHAPES[3];
      const url = `${base}/series/price?from=${end - span}&to=${end}&bucket=${bucket}&aggregation=${aggregation}`;
      const plainMs = [];
      const gzMs = [];
      let plain;
      let gzip;
      for (let i = 0; i < HISTORY_QUERIES; i++) {
        const a = await timed(() => httpGet(url));
        const b = await timed(() => httpGet(url, { 'accept-encoding': 'gzip, deflate, br, zstd' }));
        ok(a.result, name);
        ok(b.result, name);
        plainMs.push(a.ms);
        gzMs.push(b.ms);
        [plain, gzip] = [a.result, b.result];
      }
      if (gzip.headers['content-encoding'] !== 'gzip') throw new Error(`GET /series/price (${name}) was not compressed`);
      compressed = { name, plainMs: median(plainMs), gzMs: median(gzMs), plainBytes: plain.body.length, gzBytes: gzip.body.length };
    }
    return { backend: timeseries.kind, shapes, steady, compressed };
  } finally {
    await app.close(); // its keys go with the run's prefix
  }
}

/**
 * The poll the scheduler runs every INGEST_INTERVAL_MS with the live providers (coinbase for
 * price), when the ticker has nothing newer than what is stored: in-process, against a loopback
 * server answering the ticker, over 24 h of stored samples (so the summary refresh the run
 * ends with reads what it reads in production).
 */
async function livePoll(keyPrefix) {
  const { AppModule } = await dist('app.module.js');
  const { SentimentIngestService } = await dist('ingest/sentiment-ingest.service.js');
  const { SeriesRepository } = await dist('series/series.repository.js');
  const { TimeseriesService } = await dist('timeseries/timeseries.service.js');
  const now = Date.now();
  const ticker = JSON.stringify({ ask: '63212.98', bid: '63212.97', volume: '4916.9', trade_id: 1, price: '63212.97', size: '0.0078', time: new Date(now - 5_000).toISOString() });
  const upstream = createServer((req, res) => {
    if (req.url?.startsWith('/coinbase/products/BTC-USD/ticker')) res.writeHead(200, { 'content-type': 'application/json' }).end(ticker);
    else res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const origin = `http://127.0.0.1:${upstream.address().port}`;
  const ctx = await NestFactory.createApplicationContext(
    AppModule.forRoot({
      NODE_ENV: 'production',
      REDIS_URL,
      REDIS_KEY_PREFIX: keyPrefix,
      PRICE_SOURCE: 'coinbase,kraken,bitstamp',
      SENTIMENT_SOURCE: 'senticrypt-v2',
      // Production polls are INGEST_INTERVAL_MS (30 s) apart, far beyond the venues' pacing
      // (coinbase 125 ms between calls); back to back here, pacing would be all we measured.
      UPSTREAM_MIN_INTERVAL_MS: '0',
      COINBASE_API_URL: `${origin}/coinbase`,
      SENTICRYPT_V2_API_URL: `${origin}/senticrypt/v2`,
      INGEST_SCHEDULE_ENABLED: 'false',
      INGEST_ON_STARTUP: 'false',
      LOG_LEVEL: 'warn',
    }),
    { logger: ['error', 'warn'] },
  );
  try {
    const repository = ctx.get(SeriesRepository);
    const timeseries = ctx.get(TimeseriesService);
    await repository.ensureStorage();
    const n = 2880;
    // Every venue of the default composite has its day stored: the summary refreshed after the
    // poll reads all three, as in production.
    for (const [v, def] of repository.defs('price').entries()) {
      await timeseries.add(def.key, Array.from({ length: n }, (_, i) => ({ timestamp: now - 10_000 - (n - 1 - i) * 30_000, value: 63_000 + v + (i % 100) })));
    }
    const today = now - (now % DAY_MS);
    await timeseries.add(repository.defs('sentiment')[0].key, [0, 1, 2].map((i) => ({ timestamp: today - (2 - i) * DAY_MS, value: 0.1 * i })));
    const ingest = ctx.get(SentimentIngestService);
    const first = await ingest.run('coinbase');
    if (first.stored !== 1) throw new Error(`the first coinbase poll stored ${first.stored}`);
    for (let i = 0; i < 20; i++) await ingest.run('coinbase'); // warm-up
    const ms = [];
    for (let i = 0; i < LIVE_POLLS; i++) {
      const run = await timed(() => ingest.run('coinbase'));
      if (run.result.stored !== 0 || run.result.skipped !== 1) throw new Error('the coinbase poll found something new');
      ms.push(run.ms);
    }
    return { median: median(ms), p90: quantile(ms, 0.9), max: Math.max(...ms), runs: LIVE_POLLS };
  } finally {
    await ctx.close(); // its keys go with the run's prefix
    upstream.close();
  }
}

// ---------------------------------------------------------------------------------------------

function report(r) {
  const fmt = (n, digits = 2) => n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const int = (n) => Math.round(n).toLocaleString('en');
  const h = r.http;
  const p99Ratio = h.service.p99 / h.bare.p99;
  const rows = [
    ['cached GET /is-bitcoin-lit (service)', `${int(h.service.rps)} req/s`, `${h.client}; p50 ${fmt(h.service.p50)} ms, p99 ${fmt(h.service.p99)} ms (worst round ${fmt(h.service.p99Max)}), ${fmt(h.service.cpuUsPerRequest, 1)} µs CPU/req`, '', null],
    ['bare node http, same body (floor)', `${int(h.bare.rps)} req/s`, `p50 ${fmt(h.bare.p50)} ms, p99 ${fmt(h.bare.p99)} ms, ${fmt(h.bare.cpuUsPerRequest, 1)} µs CPU/req`, '', null],
    ['service / bare requests/s', `${fmt(h.ratio)} ×`, `median of ${h.roundRatios.length} paired rounds: ${h.roundRatios.map((x) => fmt(x)).join(' ')}`, '≥ 0.80 ×', h.ratio >= 0.8],
    ['service / bare p99', `${fmt(p99Ratio)} ×`, `medians over rounds`, '≤ 2 ×', p99Ratio <= 2],
    [
      'context: bare after ordinary traffic',
      `${fmt(h.usedRatio)} × bare`,
      `the bare server once it has served 300 requests of real clients' header sets (${int(h.usedBare.rps)} req/s, ${fmt(h.usedBare.cpuUsPerRequest, 1)} µs CPU/req); service / it ${fmt(h.ratioToUsed)} ×`,
      '',
      null,
    ],
    [
      "context: bare with the service's headers",
      `${fmt(h.headedRatio)} × bare`,
      `the bare server sending the hit's ${h.headedHeaderCount} headers as one list (${int(h.headedBare.rps)} req/s, ${fmt(h.headedBare.cpuUsPerRequest, 1)} µs CPU/req); service / it ${fmt(h.ratioToHeaded)} ×`,
      '',
      null,
    ],
  ];
  // History: each shape against the bare range it stands for, on each backend measured.
  const native = r.history.native;
  for (const [i, shape] of r.history.portable.shapes.entries()) {
    const nat = native?.shapes[i];
    const overhead = shape.httpMs - shape.floorMs;
    const three = i === 0;
    rows.push([
      `GET /series ${shape.name} (portable${i === 0 ? ', 1 series' : ''})`,
      `${fmt(shape.httpMs)} ms`,
      `bare range script ${fmt(shape.floorMs)} ms (${fmt(shape.httpMs / shape.floorMs)} ×, ${overhead >= 0 ? '+' : ''}${fmt(overhead)} ms); ${shape.points} points from ${shape.source}`,
      nat ? '≤ 2 × native' : three ? 'overhead ≤ 1 ms' : '',
      nat ? shape.httpMs / nat.httpMs <= 2 : three ? overhead <= 1 : null,
    ]);
    const steady = i === 0 && r.history.portable.steady;
    if (steady) {
      const over = steady.httpMs - steady.floorMs;
      rows.push([
        `GET /series ${steady.name}, steady state (portable)`,
        `${fmt(steady.httpMs)} ms`,
        `after ${STEADY_WARMUP} more queries: bare range script ${fmt(steady.floorMs)} ms (${over >= 0 ? '+' : ''}${fmt(over)} ms)`,
        'overhead ≤ 1 ms',
        over <= 1,
      ]);
    }
    if (nat) {
      const natOverhead = nat.httpMs - nat.floorMs;
      rows.push([
        `GET /series ${shape.name} (native)`,
        `${fmt(nat.httpMs)} ms`,
        `bare TS.RANGE ${fmt(nat.floorMs)} ms (+${fmt(natOverhead)} ms); portable / native ${fmt(shape.httpMs / nat.httpMs)} ×`,
        three ? 'overhead ≤ 1 ms' : '',
        three ? natOverhead <= 1 : null,
      ]);
    }
  }
  const gzipped = r.history.portable.compressed;
  rows.push([
    `GET /series ${gzipped.name}, compressed (gzip)`,
    `${fmt(gzipped.gzMs)} ms`,
    `the same query uncompressed ${fmt(gzipped.plainMs)} ms (${gzipped.gzMs >= gzipped.plainMs ? '+' : ''}${fmt(gzipped.gzMs - gzipped.plainMs)} ms); ${int(gzipped.plainBytes)} → ${int(gzipped.gzBytes)} bytes`,
    '',
    null,
  ]);
  const comp = r.history.composite.shapes[0];
  const compOverhead = comp.httpMs - comp.floorMs;
  rows.push([
    `GET /series ${comp.name}, 3 venues (portable)`,
    `${fmt(comp.httpMs)} ms`,
    `composite of coinbase, kraken, bitstamp; their 3 bare range scripts together ${fmt(comp.floorMs)} ms (+${fmt(compOverhead)} ms); ${comp.source}`,
    '',
    null,
  ]);
  rows.push(
    ['cache-miss summary (compute, in-process)', `p50 ${fmt(r.missCompute.p50, 3)} ms`, `p99 ${fmt(r.missCompute.p99, 3)} ms, ${r.missCompute.runs} runs`, 'p50 ≤ 1.5 ms', r.missCompute.p50 <= 1.5],
    ['live poll, nothing new (coinbase ticker)', `${fmt(r.livePoll.median)} ms`, `median of ${r.livePoll.runs}, p90 ${fmt(r.livePoll.p90)}, max ${fmt(r.livePoll.max)}; includes the summary refresh`, '≤ 5 ms', r.livePoll.median <= 5],
    ['ingest 24 h payload, first run', `${fmt(r.ingest.first.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.first.max, 1)}`, '≤ 60 ms', r.ingest.first.median <= 60],
    ['ingest 24 h payload, re-run', `${fmt(r.ingest.rerun.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.rerun.max, 1)}`, '≤ 60 ms', r.ingest.rerun.median <= 60],
    ['ingest 24 h payload, re-run full=true', `${fmt(r.ingest.rerunFull.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.rerunFull.max, 1)}`, '≤ 60 ms', r.ingest.rerunFull.median <= 60],
    ['ingest 24 h payload, 1 new record', `${fmt(r.ingest.incremental.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.incremental.max, 1)}`, '', null],
    ['ingest 24 h payload, 1 new, 100 in a row', `${fmt(r.ingest.incrementalInARow.median, 1)} ms`, `median of ${INCREMENTAL_IN_A_ROW}, max ${fmt(r.ingest.incrementalInARow.max, 1)}`, '', null],
    [`backfill (${r.backend} backend)`, `${int(r.backfill.perSecond)} samples/s`, `${int(r.backfill.samples)} samples in ${fmt(r.backfill.ms / 1000)} s`, '≥ 150,000/s', r.backfill.perSecond >= 150_000],
    ['service peak RSS (VmHWM)', `${fmt(r.serviceRssMb, 1)} MB`, '', '≤ 150 MB', r.serviceRssMb <= 150],
  );
  const head = ['measure', 'value', 'detail', 'target', 'met'];
  const cells = rows.map(([a, b, c, d, e]) => [a, b, c, d, e === null ? '' : e ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)));
  const line = (row) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const m = r.machine;
  console.log(`\nis-bitcoin-lit bench — ${r.startedAt}, ${m.cpus} × ${m.cpu}, Node ${m.node}, Redis ${m.redis}, ${r.http.client}, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${DURATION_S} s\n`);
  console.log([line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n'));
  if (!native) console.log('\nhistory vs native RedisTimeSeries: skipped (BENCH_NATIVE_REDIS_URL is not set); portable figures are against the bare portable range script');
  const dir = join(root, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const json = JSON.stringify({ ...r, table: rows.map(([measure, value, detail, target, met]) => ({ measure, value, detail, target, met })) }, null, 2);
  const file = join(dir, `bench-${r.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, json);
  writeFileSync(join(dir, 'latest.json'), json);
  console.log(`\nwritten to ${file}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench failed: ${err.stack ?? err}`);
    process.exit(1);
  },
);
