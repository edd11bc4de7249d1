// Fan-out benchmark for live notifications: N SSE + N WebSocket clients on one instance, one
// POST /refresh, time until every client has the ingest event; the server's RSS; then SIGTERM
// with every client still connected, and how long the server takes to exit.
// Usage: npm run build && node bench/notifications-fanout.mjs [clientsPerTransport=500]
// Needs Redis at REDIS_URL (default redis://127.0.0.1:6379); uses its own key prefix and
// deletes its keys afterwards. Linux (reads RSS from /proc).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { freePort, sleep, waitFor } from '../test/support/shared.mjs';
import { deleteKeys } from './delete-keys.mjs';

const perTransport = Number(process.argv[2] ?? 500);
const token = 'bench-refresh-token-0123456789'; // POST /refresh needs REFRESH_TOKEN
const prefix = `bench:notify:${process.pid}`;
const port = await freePort();
const fixture = new URL('../test/fixtures/senticrypt-v1-2021-07-07.json', import.meta.url).pathname;
const server = spawn(process.execPath, ['dist/main.js'], {
  env: {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    SENTIMENT_API_URL: `file://${fixture}`,
    INGEST_ON_STARTUP: 'false',
    INGEST_SCHEDULE_ENABLED: 'false',
    NOTIFY_MAX_CLIENTS: String(2 * perTransport),
    NOTIFY_MAX_CLIENTS_PER_IP: String(2 * perTransport), // every client here is 127.0.0.1
    THROTTLE_LIMIT: '0', // and each SSE request and WebSocket handshake counts against the rate limit
    REFRESH_TOKEN: token,
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const exited = new Promise((r) => server.once('exit', r));
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1]);
const httpStatus = (path, method = 'GET', headers = {}) =>
  new Promise((resolve) =>
    request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    })
      .on('error', () => resolve(0))
      .end(),
  );

try {
  await waitFor('the server to start', async () => (await httpStatus('/docs-json')) === 200, { timeoutMs: 30_000, intervalMs: 100 });
  const idle = rssKiB();
  let received = 0;
  let closedByServer = 0;
  let allReceived;
  const all = new Promise((r) => (allReceived = r));
  const got = () => ++received === 2 * perTransport && allReceived();
  for (let i = 0; i < perTransport; i++) {
    await new Promise((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          buf += c;
          if (buf.includes('event: ingest')) {
            buf = '';
            got();
          }
        });
        res.on('end', () => closedByServer++);
        resolve();
      })
        .on('error', reject)
        .end();
    });
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/notifications`);
    // ws' default binaryType ('nodebuffer') hands every message over as one Buffer.
    ws.on('message', (/** @type {Buffer} */ d) => d.toString('utf8').startsWith('{"type":"ingest"') && got());
    ws.on('close', () => closedByServer++);
    await new Promise((r) => ws.once('open', r));
  }
  const connected = rssKiB();
  const t0 = performance.now();
  const refreshed = await httpStatus('/refresh', 'POST', { authorization: `Bearer ${token}` });
  if (refreshed !== 200) throw new Error(`POST /refresh answered ${refreshed}`);
  const refreshMs = performance.now() - t0;
  await all;
  const allReceivedMs = performance.now() - t0;
  const afterEvent = rssKiB();
  const t1 = performance.now();
  server.kill('SIGTERM');
  await exited;
  const shutdownMs = performance.now() - t1;
  await sleep(200);
  console.log(
    JSON.stringify({
      clients: 2 * perTransport,
      refreshMs: Math.round(refreshMs),
      allReceivedMs: Math.round(allReceivedMs),
      serverRssKiB: { idle, connected, afterEvent },
      shutdownMs: Math.round(shutdownMs),
      clientsClosedByShutdown: closedByServer,
    }),
  );
} catch (err) {
  console.error(`notifications-fanout failed: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  await deleteKeys(redis, prefix);
  await redis.quit();
  process.exit(process.exitCode ?? 0);
}
