import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AddressInfo, connect } from 'node:net';
import { Redis } from 'ioredis';
import { AUTH, postRefresh, startTestApp, stopTestApp } from './support/app.js';
import { uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { report } from './support/wait.js';

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
