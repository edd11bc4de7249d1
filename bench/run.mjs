// `npm run bench`: measures the production build (dist/, built by the npm script) against the
// local Redis and prints one table, also written as JSON to bench/results/.
//
// 1. HTTP: the service (`npm run start:prod`'s command, NODE_ENV=production, default config) runs as a child
//    process fed by a loopback upstream serving the recorded 24 h payload; autocannon (its own
//    process, 64 connections) loads the cached GET /is-bitcoin-lit and a bare Node `http` server
//    (also its own process) returning the same bytes, in alternating rounds; medians over rounds,
//    and each server's CPU time per request. Same run, same machine.
// 2. In-process (a Nest application context built from dist/ in this process, own key prefix):
//    cache-miss summary computations, ingest of the 24 h payload handed over as text in memory
//    (so the HTTP download is excluded; JSON decoding and validation are not), backfill of synthetic samples through
//    TimeseriesService.add.
// 3. Peak RSS of the service process (VmHWM from /proc) over the whole run.
//
// Every key lives under a random `bench:<hex>` prefix and is deleted at the end.
// Knobs: BENCH_DURATION_S (autocannon seconds per target and round, default 4), BENCH_ROUNDS
// (default 5), BENCH_BACKFILL (samples,
// default 1,000,000), REDIS_URL.
import { execFile, spawn } from 'node:child_process';
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
function httpGet(url) {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
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
    // Exactly `npm run start:prod` (node flags included), minus npm in between.
    const [, ...startArgs] = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['start:prod'].split(/\s+/);
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
    const body = (await httpGet(url)).body;

    // --- cached GET: the service and the bare server with the same bytes, interleaved --------
    // Both run side by side; rounds alternate which goes first, and each figure is the median
    // over rounds, so a slow moment of the (shared) machine does not land on one side only.
    const bodyFile = join(tmp, 'body.json');
    writeFileSync(bodyFile, body);
    const bare = spawn(process.execPath, [join(root, 'bench/bare-server.mjs'), bodyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(bare);
    const [portLine] = await once(bare.stdout, 'data');
    const bareUrl = `http://127.0.0.1:${String(portLine).trim()}/is-bitcoin-lit`;
    console.error(`bench: cached GET, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${DURATION_S} s per target …`);
    // Warm-up, the same for both: after 2 s the service's first round still ran at 60-70 % of
    // the later ones (its code is still being optimized); after 5 s it no longer stands out.
    await cannon(url, WARMUP_S);
    await cannon(bareUrl, WARMUP_S);
    const rounds = { service: [], bare: [] };
    const targets = [
      ['service', url, service.pid],
      ['bare', bareUrl, bare.pid],
    ];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, target, pid] of round % 2 ? [...targets].reverse() : targets) {
        const cpuBefore = cpuMs(pid);
        const run = await cannon(target, DURATION_S);
        run.cpuUsPerRequest = ((cpuMs(pid) - cpuBefore) * 1000) / run.requests;
        rounds[name].push(run);
      }
    }
    const hit = await httpGet(url);
    if (hit.headers['x-cache'] !== 'HIT' || !hit.body.equals(body)) throw new Error('the service did not serve the cached body');
    bare.kill('SIGTERM');
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
    if (svc.errors || bareResult.errors) throw new Error(`errors under load: service ${svc.errors}, bare ${bareResult.errors}`);
    // Each round pairs a service run with a bare run at about the same time: the ratio is the
    // median of the rounds' ratios.
    const roundRatios = rounds.service.map((r, i) => r.rps / rounds.bare[i].rps);
    results.http = {
      service: svc,
      bare: bareResult,
      ratio: median(roundRatios),
      roundRatios,
      bodyBytes: body.length,
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

function report(r) {
  const fmt = (n, digits = 2) => n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const int = (n) => Math.round(n).toLocaleString('en');
  const rows = [
    ['cached GET /is-bitcoin-lit (service)', `${int(r.http.service.rps)} req/s`, `p50 ${r.http.service.p50} ms, p99 ${r.http.service.p99} ms (worst round ${r.http.service.p99Max}), ${fmt(r.http.service.cpuUsPerRequest, 1)} µs CPU/req`, 'p99 ≤ 10 ms', r.http.service.p99 <= 10],
    ['bare node http, same body', `${int(r.http.bare.rps)} req/s`, `p50 ${r.http.bare.p50} ms, p99 ${r.http.bare.p99} ms, ${fmt(r.http.bare.cpuUsPerRequest, 1)} µs CPU/req`, '', null],
    ['service / bare requests/s', `${fmt(r.http.ratio)} ×`, `median of ${r.http.roundRatios.length} rounds; rounds ${r.http.roundRatios.map((x) => fmt(x)).join(' ')}`, '≥ 0.60 ×', r.http.ratio >= 0.6],
    ['cache-miss summary (compute, in-process)', `p50 ${fmt(r.missCompute.p50, 3)} ms`, `p99 ${fmt(r.missCompute.p99, 3)} ms, ${r.missCompute.runs} runs`, 'p50 ≤ 1.5 ms', r.missCompute.p50 <= 1.5],
    ['ingest 24 h payload, first run', `${fmt(r.ingest.first.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.first.max, 1)}`, '≤ 60 ms', r.ingest.first.median <= 60],
    ['ingest 24 h payload, re-run', `${fmt(r.ingest.rerun.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.rerun.max, 1)}`, '≤ 60 ms', r.ingest.rerun.median <= 60],
    ['ingest 24 h payload, re-run full=true', `${fmt(r.ingest.rerunFull.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.rerunFull.max, 1)}`, '≤ 60 ms', r.ingest.rerunFull.median <= 60],
    ['ingest incremental, 1 new record', `${fmt(r.ingest.incremental.median, 1)} ms`, `median of ${INGEST_ROUNDS}, max ${fmt(r.ingest.incremental.max, 1)}`, '≤ 5 ms', r.ingest.incremental.median <= 5],
    ['ingest incremental, 100 in a row', `${fmt(r.ingest.incrementalInARow.median, 1)} ms`, `median of ${INCREMENTAL_IN_A_ROW}, max ${fmt(r.ingest.incrementalInARow.max, 1)}`, '', null],
    [`backfill (${r.backend} backend)`, `${int(r.backfill.perSecond)} samples/s`, `${int(r.backfill.samples)} samples in ${fmt(r.backfill.ms / 1000)} s`, '≥ 150,000/s', r.backfill.perSecond >= 150_000],
    ['service peak RSS (VmHWM)', `${fmt(r.serviceRssMb, 1)} MB`, '', '≤ 150 MB', r.serviceRssMb <= 150],
  ];
  const head = ['measure', 'value', 'detail', 'target', 'met'];
  const cells = rows.map(([a, b, c, d, e]) => [a, b, c, d, e === null ? '' : e ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)));
  const line = (row) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const m = r.machine;
  console.log(`\nis-bitcoin-lit bench — ${r.startedAt}, ${m.cpus} × ${m.cpu}, Node ${m.node}, Redis ${m.redis}, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${DURATION_S} s\n`);
  console.log([line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n'));
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
