import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { startTestApp, stopTestApp } from './support/app.js';
import { uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

/**
 * Odd requests the router itself refuses, before any hook or filter runs: they must still get
 * the API's JSON error shape, the request id and the security headers.
 */
describe('API edges (e2e, real Redis)', () => {
  const prefix = uniquePrefix('edges');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, loadFixture().slice(0, 10)));
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it.each([
    ['/series/%FF', 400, 'Bad Request'],
    ['/series/%', 400, 'Bad Request'],
    [`/series/${'a'.repeat(101)}`, 414, 'URI Too Long'],
  ])('GET %s (refused by the router) is a %i in the API error shape', async (url, status, error) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(status);
    const body = res.json<Record<string, unknown>>();
    expect(Object.keys(body).sort()).toEqual(['error', 'message', 'requestId', 'statusCode']);
    expect(body).toMatchObject({ statusCode: status, error, requestId: res.headers['x-request-id'] });
    expect(typeof body.message).toBe('string');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toBeDefined();
  });
});
