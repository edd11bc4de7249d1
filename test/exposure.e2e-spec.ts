import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { MetricsService } from '../src/metrics/metrics.service.js';
import { bootApp } from './support/app.js';
import { bodyOf, rawExchange } from './support/raw-http.js';
import { freePort } from './support/wait.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

/**
 * What an operator can close: /docs (DOCS_ENABLED, on by default), /metrics behind a
 * bearer token (METRICS_TOKEN) and/or on its own port (METRICS_PORT), and METRICS_ENABLED=false
 * collecting nothing.
 */
describe('docs and metrics exposure switches (e2e, real Redis)', () => {
  const prefix = uniquePrefix('exposure');
  const apps: NestFastifyApplication[] = [];
  let redis: Redis;

  const boot = async (env: Record<string, string>) => {
    const app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', ...env });
    apps.push(app);
    return app;
  };

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('serves Swagger UI and the OpenAPI document (JSON and YAML) by default, and none with DOCS_ENABLED=false', async () => {
    const byDefault = await boot({ DOCS_ENABLED: '' }); // empty = unset: the default applies
    expect((await byDefault.inject({ method: 'GET', url: '/docs' })).statusCode).toBe(200);
    expect((await byDefault.inject({ method: 'GET', url: '/docs-json' })).json()).toHaveProperty('paths');
    expect((await byDefault.inject({ method: 'GET', url: '/docs-yaml' })).body).toMatch(/^openapi: /);
    const off = await boot({ DOCS_ENABLED: 'false' });
    for (const url of ['/docs', '/docs-json', '/docs-yaml']) {
      const res = await off.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ statusCode: 404, error: 'Not Found' });
    }
  });

  it('with METRICS_TOKEN, /metrics needs Authorization: Bearer <token>: 401 JSON without it or with a wrong one', async () => {
    const app = await boot({ METRICS_TOKEN });
    const scrape = (authorization?: string) =>
      app.inject({ method: 'GET', url: '/metrics', headers: authorization ? { authorization } : {} });
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Basic ${METRICS_TOKEN}`, `Bearer ${METRICS_TOKEN}x`]) {
      const res = await scrape(authorization);
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.json()).toMatchObject({ statusCode: 401, message: 'Missing or invalid bearer token (Authorization: Bearer <METRICS_TOKEN>)' });
      expect(res.body).not.toContain('http_request_duration_seconds');
    }
    const ok = await scrape(`Bearer ${METRICS_TOKEN}`);
    expect(ok.statusCode).toBe(200);
    expect(ok.headers).toMatchObject({ 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' });
    expect(ok.body).toContain('http_request_duration_seconds');
  });

  // Anyone may send these, and /metrics is not rate limited: a warning each (Nest's adapter
  // warned that the text/plain type set for a scrape did not match the JSON error) let any
  // client write to the log as fast as it liked.
  it('a refused scrape (401 with METRICS_TOKEN, 404 with METRICS_PORT or METRICS_ENABLED=false) is JSON and logs no warning', async () => {
    const refusing = [await boot({ METRICS_TOKEN }), await boot({ METRICS_PORT: String(await freePort()), HOST: '127.0.0.1' }), await boot({ METRICS_ENABLED: 'false' })];
    const warnings: string[] = [];
    const record = (message: unknown) => void warnings.push(String(message));
    const spies = [jest.spyOn(Logger, 'warn').mockImplementation(record), jest.spyOn(Logger.prototype, 'warn').mockImplementation(record)];
    try {
      const statuses = [];
      for (const app of refusing) {
        const res = await app.inject({ method: 'GET', url: '/metrics' });
        statuses.push(res.statusCode);
        expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
        expect(res.json()).toMatchObject({ statusCode: res.statusCode });
      }
      expect(statuses).toEqual([401, 404, 404]);
      expect(warnings).toEqual([]);
    } finally {
      spies.forEach((spy) => spy.mockRestore());
    }
  });

  it('with METRICS_PORT, /metrics is served on that port only (token still applies), and the port closes with the app', async () => {
    const port = await freePort();
    const app = await boot({ METRICS_PORT: String(port), METRICS_TOKEN, HOST: '127.0.0.1' });
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).statusCode).toBe(404);

    const url = `http://127.0.0.1:${port}`;
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await ok.text()).toContain('http_request_duration_seconds');
    const denied = await fetch(`${url}/metrics`);
    expect(denied.status).toBe(401);
    expect(await denied.json()).toMatchObject({ statusCode: 401 });
    expect((await fetch(`${url}/is-bitcoin-lit`)).status).toBe(404);
    // Absolute-form (RFC 9112 §3.2.2), as the API port takes it: the token is what refuses it here.
    expect(await rawExchange(port, `GET http://127.0.0.1:${port}/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 401 /);
    expect((await fetch(`${url}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(405);
    // A request Node's parser refuses (a bad request line, oversized headers) gets the API's JSON
    // error too, not Node's bare `400 Bad Request` without a body.
    for (const [bytes, status] of [
      ['GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 400],
      [`GET /metrics HTTP/1.1\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`, 431],
      ['GET /metrics HTTP/1.1\r\n\r\n', 400], // no Host (RFC 9112 §3.2)
      ['GET /metrics HTTP/1.1\r\nExpect: 100-continue\r\n\r\n', 400], // no Host, checked before Expect
      ['GET /metrics HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', 400], // two Hosts
      ['GET /metrics HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n', 417],
    ] as const) {
      const raw = await rawExchange(port, bytes);
      expect(raw.startsWith(`HTTP/1.1 ${status} `)).toBe(true);
      // The same shape and headers as every other error: a request id (new: the request was never parsed), nosniff.
      const { requestId } = bodyOf(raw) as { requestId: string };
      expect(bodyOf(raw)).toMatchObject({ statusCode: status, requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      expect(raw.toLowerCase()).toContain(`\r\nx-request-id: ${requestId}\r\n`);
      expect(raw.toLowerCase()).toContain('\r\nx-content-type-options: nosniff\r\n');
    }

    await app.close();
    apps.splice(apps.indexOf(app), 1);
    await expect(fetch(`${url}/metrics`)).rejects.toThrow();
  });

  it('METRICS_ENABLED=false: /metrics is 404, the process collectors do not run and requests are not timed', async () => {
    const app = await boot({ METRICS_ENABLED: 'false' });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    const metrics = await app.get(MetricsService).registry.getMetricsAsJSON();
    const names = metrics.map((m) => m.name);
    expect(names).not.toContain('nodejs_eventloop_lag_seconds');
    expect(names).not.toContain('process_cpu_user_seconds_total');
    const durations = metrics.find((m) => m.name === 'http_request_duration_seconds');
    expect(durations?.values.filter((v) => v.value > 0)).toEqual([]);
  });
});
