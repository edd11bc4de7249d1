import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { AddressInfo } from 'node:net';
import { bootApp, postRefresh, startTestApp, stopTestApp } from './support/app.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

/**
 * One policy for the cached summary: not rate limited, whichever path answers it — the
 * in-memory fast path in front of Fastify, or Fastify and Nest (a request with an Origin header,
 * a HEAD, an expired copy). Before, only the Nest path counted and limited, so one client got
 * 200s from memory and then 429s until the window ended.
 */
describe('rate limits and the cached summary (e2e, real Redis, real HTTP)', () => {
  const prefix = uniquePrefix('rlpolicy');
  const LIMIT = 3;
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let base: string;

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, loadFixture().slice(0, 500), {
      THROTTLE_LIMIT: String(LIMIT),
      THROTTLE_TTL_MS: '60000',
      CACHE_L1_TTL_MS: '60000', // the fast path holds a fresh copy throughout
    }));
    expect((await postRefresh(app)).statusCode).toBe(200);
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('answers GET /is-bitcoin-lit every time on every path, well past THROTTLE_LIMIT, without rate-limit headers', async () => {
    const answers: Array<{ status: number; limited: boolean }> = [];
    for (let i = 0; i < 4 * LIMIT; i++) {
      // Alternately answered from memory and by Fastify/Nest (the fast path leaves Origin requests to Fastify).
      const headers: Record<string, string> = i % 2 === 0 ? {} : { origin: 'https://other.example' };
      const res = await fetch(`${base}/is-bitcoin-lit`, { headers });
      await res.text();
      answers.push({ status: res.status, limited: res.headers.has('x-ratelimit-limit') });
    }
    for (let i = 0; i < 2 * LIMIT; i++) {
      const res = await app.inject({ method: i % 2 === 0 ? 'GET' : 'HEAD', url: '/is-bitcoin-lit' });
      answers.push({ status: res.statusCode, limited: 'x-ratelimit-limit' in res.headers });
    }
    expect(answers).toEqual(Array.from({ length: 6 * LIMIT }, () => ({ status: 200, limited: false })));
  });

  // Swagger's routes are Fastify's own, outside the Nest guard: documented as not limited.
  it('does not limit /docs and /docs-json either, as documented', async () => {
    const answers: Array<{ status: number; limited: boolean }> = [];
    for (const path of ['/docs', '/docs-json']) {
      for (let i = 0; i < 2 * LIMIT; i++) {
        const res = await fetch(`${base}${path}`);
        await res.text();
        answers.push({ status: res.status, limited: res.headers.has('x-ratelimit-limit') });
      }
    }
    expect(answers).toEqual(Array.from({ length: 4 * LIMIT }, () => ({ status: 200, limited: false })));
  });

  it('still limits the same client on the other routes', async () => {
    const statuses: number[] = [];
    for (let i = 0; i <= LIMIT; i++) statuses.push((await fetch(`${base}/series`)).status);
    expect(statuses).toEqual([...Array.from({ length: LIMIT }, () => 200), 429]);
  });

  it('counts HEAD against the GET budget of its route (it runs the GET handler), not a budget of its own', async () => {
    const statuses: number[] = [];
    for (let i = 0; i <= LIMIT; i++) statuses.push((await fetch(`${base}/verdict`, { method: i % 2 === 0 ? 'GET' : 'HEAD' })).status);
    expect(statuses).toEqual([...Array.from({ length: LIMIT }, () => 200), 429]);
  });
});

describe('TRUST_PROXY (e2e, real Redis)', () => {
  const prefix = uniquePrefix('trust-proxy');
  let redis: Redis;
  let app: NestFastifyApplication;

  afterEach(async () => {
    await app?.close();
    await deleteKeys(redis, prefix);
  });
  beforeAll(() => (redis = new Redis(REDIS_URL)));
  afterAll(() => redis.quit());

  /** Statuses of three GET /verdict sent through a proxy at 127.0.0.1 that appends the real client (203.0.113.9) to whatever the client wrote. */
  const throughProxy = async (trust: string) => {
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', THROTTLE_LIMIT: '2', TRUST_PROXY: trust });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await app.inject({ method: 'GET', url: '/verdict', headers: { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.9` } })).statusCode);
    }
    return statuses;
  };

  it('listing the proxies, the client is the address the proxy appended: writing another first entry does not reset the limit', async () => {
    expect(await throughProxy('127.0.0.1')).toEqual([200, 200, 429]);
  });

  it('true believes every hop, so each first entry the client writes is a new client (documented)', async () => {
    expect(await throughProxy('true')).toEqual([200, 200, 200]);
  });

  it('counts an IPv6 client by its /64: a new address in the same /64 is the same client, another /64 is not', async () => {
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', THROTTLE_LIMIT: '2', TRUST_PROXY: '127.0.0.1' });
    const status = async (client: string) =>
      (await app.inject({ method: 'GET', url: '/verdict', headers: { 'x-forwarded-for': client } })).statusCode;
    const statuses = [];
    for (const host of [':1', ':2', '1:2:3:4', 'ffff::9']) statuses.push(await status(`2001:db8:0:7:${host}`));
    expect(statuses).toEqual([200, 200, 429, 429]);
    expect(await status('2001:db8:0:8::1')).toBe(200);
    // IPv4 clients, also written IPv4-mapped, stay one address each.
    expect([await status('203.0.113.9'), await status('::ffff:203.0.113.9'), await status('203.0.113.9')]).toEqual([200, 200, 429]);
    expect(await status('203.0.113.10')).toBe(200);
  });

  it('refuses an address it cannot read, naming TRUST_PROXY', async () => {
    await expect(bootApp({ REDIS_KEY_PREFIX: prefix, TRUST_PROXY: '10.0.0.0/99' })).rejects.toThrow(/TRUST_PROXY: .*10\.0\.0\.0\/99/);
  });

  // Fastify/Express read a number as a hop count; here "1" used to trust every hop and "2" no proxy at all.
  it('refuses a hop count at startup, naming TRUST_PROXY and what to set instead', async () => {
    for (const hops of ['1', '2']) {
      const outcome = await bootApp({ REDIS_KEY_PREFIX: prefix, TRUST_PROXY: hops }).then(
        async (booted) => booted.close().then(() => 'started'),
        (err: Error) => err.message,
      );
      expect(outcome).toMatch(/TRUST_PROXY: "\d" looks like a hop count, which is not supported: list the proxies' addresses/);
    }
  });
});
