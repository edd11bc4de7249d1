import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AddressInfo, connect, Server, Socket } from 'node:net';
import { Redis } from 'ioredis';
import { NotificationsService } from '../src/notifications/notifications.service.js';
import { AUTH, postRefresh, startTestApp, stopTestApp, TEST_REFRESH_TOKEN } from './support/app.js';
import { uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { report, waitFor } from './support/wait.js';

// Waits on real processes and timers (reconnects, scheduled runs): more than Jest's default 5 s.
jest.setTimeout(30_000);

const CASES = 300;
const SEED = 0x1b17c0;

/** mulberry32: a tiny seeded PRNG, so every run sends the same requests. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  const junk = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(next() * 95))).join('');
  return { next, pick, junk };
}

interface FuzzCase {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

const PATHS = ['/is-bitcoin-lit', '/refresh', '/health/live', '/health/ready', '/metrics', '/docs-json', '/', '/nope', '/is-bitcoin-lit/', '//refresh', '/..%2f..%2fetc%2fpasswd', '/%E0%A4%A', '/refresh/%00'];
const METHODS = ['GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND', 'TRACE', 'FOO'];
const VALUES = ['true', 'false', 'maybe', '', '1', '-1', '1e999', 'null', '%00', '%FF', '[]', '{}', '%22%3Cscript%3E', 'x'.repeat(4000)];
const KEYS = ['full', 'full', 'hours', 'full[]', '__proto__', 'constructor', 'a.b', '%00'];
const BODIES = ['{"full":', '{"full":true}', '[]', 'null', '"x"', '{"__proto__":{"admin":true}}', '{'.repeat(5000), 'x'.repeat(70 * 1024), '\u0000\u0001'];
const TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1'];

function generate(seed: number, n: number): FuzzCase[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => {
    const method = r.pick(METHODS);
    let path = r.pick(PATHS);
    const params = Math.floor(r.next() * 3);
    if (params) path += '?' + Array.from({ length: params }, () => `${r.pick(KEYS)}=${r.pick(VALUES)}`).join('&');
    const headers: Record<string, string> = {};
    const roll = r.next();
    if (roll < 0.2) Object.assign(headers, AUTH); // get past the token check to reach validation
    else if (roll < 0.35) headers.authorization = r.pick(['Bearer ', 'Bearer x', `Bearer ${r.junk(600)}`, 'Basic Zm9vOmJhcg==']);
    if (r.next() < 0.1) headers['x-huge'] = 'h'.repeat(20_000 + Math.floor(r.next() * 20_000));
    if (r.next() < 0.2) headers['x-request-id'] = r.pick(['ok-id', r.junk(40), 'x'.repeat(500)]);
    if (r.next() < 0.1) headers.accept = r.junk(30);
    let body: string | undefined;
    if (!['GET', 'HEAD'].includes(method) && r.next() < 0.6) {
      body = r.pick(BODIES);
      headers['content-type'] = r.pick(TYPES);
    }
    return { method, path, headers, body };
  });
}

/**
 * Sends one case as raw bytes over a real socket (so Node's own limits, e.g. header size,
 * apply, and no client library tidies the request) and returns the response's status code.
 */
function send(port: number, c: FuzzCase): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = c.body === undefined ? undefined : Buffer.from(c.body, 'utf8');
    const lines = [`${c.method} ${c.path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [k, v] of Object.entries(c.headers)) lines.push(`${k}: ${v}`);
    if (body) lines.push(`Content-Length: ${body.length}`);
    const socket = connect(port, '127.0.0.1');
    let head = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`timeout: ${c.method} ${c.path}`)));
    socket.on('data', (chunk) => {
      head += chunk.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
      if (m) {
        resolve(Number(m[1]));
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed without a status line: ${c.method} ${c.path}`)));
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    if (body) socket.write(body);
  });
}

describe('request fuzzer (e2e, real HTTP, real Redis)', () => {
  const prefix = uniquePrefix('fuzz');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let port: number;

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, loadFixture(), { LOG_LEVEL: 'fatal' }));
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
    expect((await postRefresh(app)).statusCode).toBe(200); // data exists: a 503 would be a finding
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it(`answers ${CASES} generated malformed requests with statuses below 500 and stays healthy`, async () => {
    const cases = generate(SEED, CASES);
    const byStatus = new Map<number, number>();
    const failures: string[] = [];
    for (const c of cases) {
      const status = await send(port, c).catch(() => -1);
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
      if (status >= 500 || status < 100) failures.push(`${status} ${c.method} ${c.path.slice(0, 80)} ${Object.keys(c.headers).join(',')}`);
    }
    report('fuzz statuses', Object.fromEntries([...byStatus].sort(([a], [b]) => a - b)));
    expect(failures).toEqual([]);
    expect([...byStatus.keys()].some((s) => s >= 400)).toBe(true); // it really sent bad input
    expect(await send(port, { method: 'GET', path: '/health/ready', headers: {} })).toBe(200);
    expect(await send(port, { method: 'GET', path: '/is-bitcoin-lit', headers: {} })).toBe(200);
  });

  it('is deterministic: the same seed generates the same cases', () => {
    expect(generate(SEED, 20)).toEqual(generate(SEED, 20));
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile connections: what a client does with the connection, not what it asks. Code that
// runs on raw sockets outside Fastify's error handling (the request listener in front of it,
// the Upgrade wrapper, the WebSocket gateway, the shutdown sweep) took the process down twice
// from one connection: a non-WebSocket Upgrade pipelined behind an unanswered request, and a
// reset right after a WebSocket handshake. Each case pipelines a few requests of the kinds below,
// possibly cut short and written in pieces, then ends the connection one of several ways.

const WS_HANDSHAKE = 'GET /ws/notifications HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
const REQUESTS: Readonly<Record<string, string>> = {
  hit: 'GET /is-bitcoin-lit HTTP/1.1\r\nHost: x\r\n\r\n',
  head: 'HEAD /is-bitcoin-lit HTTP/1.1\r\nHost: x\r\n\r\n',
  live: 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n',
  series: 'GET /series/price HTTP/1.1\r\nHost: x\r\n\r\n',
  sse: 'GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n',
  ws: WS_HANDSHAKE,
  // A masked text frame, then a masked close frame, after the handshake.
  wsFrames: WS_HANDSHAKE + '\x81\x82\x00\x00\x00\x00hi\x88\x80\x00\x00\x00\x00',
  h2c: 'GET /verdict HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
  refresh: `POST /refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_REFRESH_TOKEN}\r\nContent-Length: 0\r\n\r\n`,
  shortBody: 'POST /refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"full":',
  chunked: 'POST /refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"ful',
  bodyNoLength: 'POST /refresh HTTP/1.1\r\nHost: x\r\n\r\n{"full":true}',
  // What `curl -X POST -H 'content-type: application/json'` sends: no body, and no length.
  typeNoLength: `POST /refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_REFRESH_TOKEN}\r\nContent-Type: application/json\r\n\r\n`,
  getWithBody: 'GET /is-bitcoin-lit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
  halfHead: 'GET /is-bitcoin-lit HTTP/1.1\r\nHo',
  tls: '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03',
  http10: 'GET /is-bitcoin-lit HTTP/1.0\r\n\r\n',
  badWs: 'GET /ws/notifications HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n',
  headSse: 'HEAD /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n',
  // Refused in front of Fastify (RFC 9112 §3.2): a 400, then the connection closed.
  twoHosts: 'GET /is-bitcoin-lit HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
  badHostWs: WS_HANDSHAKE.replace('Host: x', 'Host: [x]'),
};
/** rst: reset at once; rstOnData: reset when the first answer byte arrives; rstLater: after a while; fin: half-close, then wait. */
const ENDINGS = ['rst', 'rstOnData', 'rstLater', 'fin'] as const;

interface ConnectionCase {
  requests: string[];
  /** Bytes of the concatenated requests actually sent (may cut the last one short). */
  cut: number;
  pieces: number;
  ending: (typeof ENDINGS)[number];
  laterMs: number;
}

function connectionCases(seed: number, n: number): ConnectionCase[] {
  const r = prng(seed);
  const kinds = Object.keys(REQUESTS);
  return Array.from({ length: n }, () => {
    const requests = Array.from({ length: 1 + Math.floor(r.next() * 3) }, () => r.pick(kinds));
    const total = requests.reduce((sum, k) => sum + REQUESTS[k].length, 0);
    return {
      requests,
      cut: r.next() < 0.3 ? Math.floor(r.next() * total) : total,
      pieces: 1 + Math.floor(r.next() * 3),
      ending: r.pick(ENDINGS),
      laterMs: Math.floor(r.next() * 60),
    };
  });
}

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Plays one case on a real socket; resolves with what came back once the connection is gone. */
async function play(port: number, c: ConnectionCase): Promise<string> {
  const bytes = Buffer.from(c.requests.map((k) => REQUESTS[k]).join(''), 'latin1').subarray(0, c.cut);
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let raw = '';
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('data', (chunk: Buffer) => {
    raw += chunk.toString('latin1');
    if (c.ending === 'rstOnData') socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const step = Math.ceil(bytes.length / c.pieces) || 1;
  for (let at = 0; at < bytes.length && !socket.destroyed; at += step) {
    socket.write(bytes.subarray(at, at + step));
    if (c.pieces > 1) await tick();
  }
  if (c.ending === 'rst') socket.resetAndDestroy();
  else if (c.ending === 'fin') socket.end();
  else if (c.ending === 'rstLater') setTimeout(() => socket.resetAndDestroy(), c.laterMs);
  // An SSE stream or an open WebSocket never ends by itself: the client leaves after a while.
  const leave = setTimeout(() => socket.resetAndDestroy(), 300);
  await closed;
  clearTimeout(leave);
  return raw;
}

describe('connection fuzzer (e2e, real HTTP, real Redis)', () => {
  const prefix = uniquePrefix('connfuzz');
  const CONNECTIONS = 240;
  const SEED_C = 0xc0ffee;
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let port: number;

  beforeAll(async () => {
    // Enough notification slots for every SSE and WebSocket client of a batch to get in.
    ({ redis, upstream, app } = await startTestApp(prefix, loadFixture(), { NOTIFY_MAX_CLIENTS_PER_IP: '1000' }));
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
    expect((await postRefresh(app)).statusCode).toBe(200);
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  const openConnections = () =>
    new Promise<number>((resolve, reject) => (app.getHttpServer() as Server).getConnections((err, n) => (err ? reject(err) : resolve(n))));

  it(`survives ${CONNECTIONS} generated hostile connections: no 5xx, no error-level log line, no connection or notification client left, still serving`, async () => {
    const errors: string[] = [];
    const spy = jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => void errors.push(String(message).slice(0, 300)));
    try {
      const cases = connectionCases(SEED_C, CONNECTIONS);
      const answers: string[] = [];
      // Eight at a time: SSE and WebSocket clients of a batch overlap, as real ones would.
      for (let i = 0; i < cases.length; i += 8) answers.push(...(await Promise.all(cases.slice(i, i + 8).map((c) => play(port, c)))));
      const statuses = answers.flatMap((raw) => [...raw.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1])));
      report('connection fuzz statuses', Object.fromEntries([...new Set(statuses)].sort().map((s) => [s, statuses.filter((x) => x === s).length])));
      expect(statuses.filter((s) => s >= 500)).toEqual([]);
      // It really got answers: 57-62 on the fixed seed, but the count moves with timing (clients
      // reset or leave after 300 ms), and a loaded CI machine answers fewer in time.
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(10);
      // Sooner than an SSE heartbeat (15 s), the write that would find a vanished client anyway.
      await waitFor('every connection closed on the server side', async () => (await openConnections()) === 0, { timeoutMs: 5_000 });
      await waitFor('no notification client left', () => app.get(NotificationsService).clientCount === 0);
      expect(errors).toEqual([]);
    } finally {
      spy.mockRestore();
    }
    expect((await fetch(`http://127.0.0.1:${port}/health/live`)).status).toBe(200);
    const hit = await fetch(`http://127.0.0.1:${port}/is-bitcoin-lit`);
    expect(hit.status).toBe(200);
  }, 120_000);

  it.each([
    ['a WebSocket handshake', '', 'ws'],
    ['an h2c upgrade', '', 'h2c'],
    // Node emits 'end' only once every byte before the FIN has been read.
    ['a WebSocket handshake', ', then bytes in a later packet', 'ws'],
    ['an h2c upgrade', ', then bytes in a later packet', 'h2c'],
  ])('an SSE stream with %s pipelined behind it%s: the connection closes when the client half-closes', async (_what, later, kind) => {
    const accepted = new Promise<Socket>((resolve) => (app.getHttpServer() as Server).once('connection', resolve));
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(REQUESTS.sse + REQUESTS[kind]);
    const serverSide = await accepted;
    const service = app.get(NotificationsService);
    await waitFor('the stream registered', () => service.clientCount === 1);
    if (later) {
      await new Promise<void>((resolve) => socket.write('xyz', () => resolve()));
      await tick(50);
    }
    socket.end(); // FIN: nothing more to send
    // Sooner than the stream's next heartbeat (15 s), whose write would find the client gone.
    await waitFor('the connection closed on the server side', () => serverSide.destroyed, { timeoutMs: 5_000 });
    expect(service.clientCount).toBe(0);
  });

  it('fifteen SSE streams pipelined on one connection: one close listener on the socket, every slot released when it closes', async () => {
    const server = app.getHttpServer() as Server;
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(REQUESTS.sse.repeat(15));
    const serverSide = await accepted;
    const service = app.get(NotificationsService);
    await waitFor('all fifteen streams registered', () => service.clientCount === 15);
    // Node's own listener(s) plus ours; one each per stream would pass Node's leak warning at 11.
    expect(serverSide.listenerCount('close')).toBeLessThan(5);
    socket.destroy();
    await waitFor('no client left', () => service.clientCount === 0);
  });

  it('is deterministic: the same seed plays the same connections', () => {
    expect(connectionCases(SEED_C, 20)).toEqual(connectionCases(SEED_C, 20));
  });
});
