import { ConfigService } from '@nestjs/config';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Env } from '../config/env.validation.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { CacheFastPath } from './cache.fast-path.js';
import { CacheService } from './cache.service.js';

describe('CacheFastPath', () => {
  const body = '{"answer":42}';
  let held: { body: string; bytes: string; storedAt: number } | undefined;
  let hits: number;
  let observed: number[];
  let fastPath: CacheFastPath;
  const cache = { peekJson: (key: string) => (key === 'p:cache' ? held : undefined) } as unknown as CacheService;
  const metrics = {
    countFastHit: () => hits++,
    httpDuration: { tally: () => ({ observe: (s: number) => observed.push(s) }) },
  } as unknown as MetricsService;

  const config = (corsOrigins: string) => ({ get: () => corsOrigins }) as unknown as ConfigService<Env, true>;

  const request = (method = 'GET', url = '/is-bitcoin-lit', headers: Record<string, string> = {}) =>
    ({ method, url, headers }) as unknown as IncomingMessage;
  function response() {
    const sent: { status?: number; headers?: string[]; body?: string } = {};
    const res = {
      writeHead: (status: number, headers: string[]) => Object.assign(sent, { status, headers: [...headers] }),
      end: (chunk: string) => (sent.body = chunk),
    } as unknown as ServerResponse;
    return { res, sent, header: (name: string) => sent.headers?.[sent.headers.indexOf(name) + 1] };
  }

  beforeEach(() => {
    held = { body, bytes: String(Buffer.byteLength(body)), storedAt: Date.now() - 5_000 };
    hits = 0;
    observed = [];
    fastPath = new CacheFastPath(cache, metrics, config(''));
    fastPath.learn('/is-bitcoin-lit', 'p:cache', '/is-bitcoin-lit');
  });

  it('answers a learned GET from the held copy: body, length, X-Cache, Age, request id, API security headers', () => {
    const { res, sent, header } = response();
    expect(fastPath.serve(request('GET', '/is-bitcoin-lit', { 'x-request-id': 'trace-1' }), res)).toBe(true);
    expect(sent.status).toBe(200);
    expect(sent.body).toBe(body);
    expect(header('content-length')).toBe('13');
    expect(header('content-type')).toBe('application/json; charset=utf-8');
    expect(header('x-cache')).toBe('HIT');
    expect(header('age')).toBe('5');
    expect(header('x-request-id')).toBe('trace-1');
    expect(header('content-security-policy')).toBe("default-src 'none';frame-ancestors 'none'");
    expect(header('x-content-type-options')).toBe('nosniff');
    expect(sent.headers).not.toContain('vary');
    expect(hits).toBe(1);
    expect(observed).toHaveLength(1);
  });

  // Requests with an Origin go to Fastify (and @fastify/cors); this answer is the one without.
  it.each(['https://dash.example', '*'])('sends Vary: Origin when CORS_ORIGINS=%s, as the answers with CORS headers do', (origins) => {
    const withCors = new CacheFastPath(cache, metrics, config(origins));
    withCors.learn('/is-bitcoin-lit', 'p:cache', '/is-bitcoin-lit');
    const { res, header } = response();
    expect(withCors.serve(request('GET', '/is-bitcoin-lit'), res)).toBe(true);
    expect(header('vary')).toBe('Origin');
  });

  it('makes up a request id when the caller sent none or a malformed one', () => {
    const a = response();
    fastPath.serve(request('GET', '/is-bitcoin-lit', { 'x-request-id': 'no spaces allowed' }), a.res);
    const b = response();
    fastPath.serve(request(), b.res);
    expect(a.header('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.header('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.header('x-request-id')).not.toBe(b.header('x-request-id'));
  });

  it.each([
    ['another method', request('HEAD')],
    ['a URL it has not learned', request('GET', '/is-bitcoin-lit?x=1')],
    ['a cross-origin request (CORS headers are Fastify’s job)', request('GET', '/is-bitcoin-lit', { origin: 'https://a.example' })],
  ])('leaves %s to Fastify', (_what, req) => {
    const { res, sent } = response();
    expect(fastPath.serve(req, res)).toBe(false);
    expect(sent.status).toBeUndefined();
    expect(hits).toBe(0);
  });

  it('leaves the request to Fastify when no fresh copy is held', () => {
    held = undefined;
    expect(fastPath.serve(request(), response().res)).toBe(false);
  });

  it('stops answering once the app is shutting down (Fastify then answers 503 and closes the connection)', () => {
    fastPath.beforeApplicationShutdown();
    expect(fastPath.serve(request(), response().res)).toBe(false);
  });
});
