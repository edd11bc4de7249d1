import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { createApp } from '../src/app.factory.js';
import { bootApp } from './support/app.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';

describe('startup (e2e)', () => {
  it('fails with a message naming a bad variable', async () => {
    await expect(createApp({ SUMMARY_HOURS: 'three', LOG_LEVEL: 'fatal' })).rejects.toThrow(
      /Invalid configuration:\n {2}SUMMARY_HOURS="three": SUMMARY_HOURS must be an integer number/,
    );
  });

  it('fails with one line naming the Redis URL without its password when Redis is unreachable', async () => {
    await expect(
      createApp({ REDIS_URL: 'redis://:topsecret@127.0.0.1:1/3', REDIS_STARTUP_WAIT_MS: '300', LOG_LEVEL: 'fatal' }),
    ).rejects.toThrow(/^Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/3 is not reachable after 300 ms \([^\n]*\)$/);
  });

  it('fails with one line when the server has no such DB (ioredis would have used DB 0)', async () => {
    const url = new URL(REDIS_URL);
    url.pathname = '/99999';
    await expect(createApp({ REDIS_URL: url.href, REDIS_STARTUP_WAIT_MS: '3000', LOG_LEVEL: 'fatal' })).rejects.toThrow(
      /^Redis at [^\n]*\/99999: DB 99999 cannot be selected \(ERR DB index is out of range\)$/,
    );
  });
});

describe('Swagger (e2e)', () => {
  const prefix = uniquePrefix('docs');
  let app: NestFastifyApplication;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none' });
  });
  afterAll(async () => {
    await app?.close();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('serves Swagger UI at /docs', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toContain('swagger-ui');
  });

  it('documents every endpoint with typed responses, errors and examples at /docs-json', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs-json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    const summary = doc.paths['/is-bitcoin-lit'].get;
    expect(summary.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/SummaryResponseDto');
    expect(summary.responses['200'].headers['X-Cache']).toBeDefined();
    expect(summary.responses['503'].content['application/json'].schema.$ref).toBe('#/components/schemas/ErrorResponseDto');
    const refresh = doc.paths['/refresh'].post;
    expect(refresh.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/IngestReportDto');
    expect(Object.keys(refresh.responses).sort()).toEqual(['200', '400', '401', '403', '413', '415', '429', '502', '503']);
    expect(refresh.parameters).toEqual([expect.objectContaining({ name: 'full', in: 'query', required: false })]);

    const schemas = doc.components.schemas;
    expect(Object.keys(schemas.SummaryResponseDto.properties).sort()).toEqual([
      'as_of',
      'hourly_average_of_averages',
      'metrics',
      'price_direction',
      'sentiment_direction',
      'verdict',
      'verdict_since',
    ]);
    expect(schemas.SummaryResponseDto.properties.verdict).toMatchObject({ enum: ['lit', 'cold', 'mixed', 'unknown'], example: 'lit' });
    expect(schemas.SummaryResponseDto.properties.verdict.description).toContain('both `rising`');
    expect(schemas.SummaryResponseDto.properties.verdict_since).toMatchObject({ type: 'string', nullable: true });
    expect(Object.keys(schemas.MetricFreshnessDto.properties).sort()).toEqual(['cadence', 'latest_sample_time', 'source', 'stale', 'unit']);
    expect(schemas.HourlyAverageDto.properties.sentiment).toMatchObject({ type: 'number', nullable: true });
    expect(schemas.HourlyAverageDto.properties.price).toMatchObject({ type: 'number', example: 33812.57 });
    expect(schemas.HourlyAverageDto.properties.time).toMatchObject({ type: 'string', example: '2021-07-07T15:00:00.000Z' });
    expect(schemas.IngestReportDto.properties.stored).toMatchObject({ type: 'integer', example: 4948 });

    // What is sent, as it is sent: a refused query's message is a list, other errors' a string.
    expect(schemas.ErrorResponseDto.properties.message.oneOf).toEqual([{ type: 'string' }, { type: 'array', items: { type: 'string' } }]);
    expect(refresh.requestBody.required).toBe(false);
    // Readiness fails with the API's error body, not @nestjs/terminus's own shape.
    const ready = doc.paths['/health/ready'].get;
    expect(ready.responses['503'].content['application/json'].schema.$ref).toBe('#/components/schemas/ErrorResponseDto');
    expect(ready.responses['200'].content['application/json'].schema.properties.status).toEqual({ type: 'string', enum: ['ok'] });
    // Rate-limited routes say so; probes and the cached summary are not limited.
    for (const path of ['/series', '/series/{metric}', '/series/combined', '/series/verdict', '/verdict', '/events']) {
      expect([path, doc.paths[path].get.responses['429']?.headers?.['Retry-After']]).toEqual([path, expect.anything()]);
    }
    for (const path of ['/health/ready', '/health/live', '/is-bitcoin-lit']) expect([path, doc.paths[path].get.responses['429']]).toEqual([path, undefined]);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await app.inject({ method: 'GET', url: '/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ statusCode: 404, error: 'Not Found' });
  });
});
