import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { gunzipSync, gzipSync } from 'node:zlib';
import { AUTH, bootApp, postRefresh, startTestApp, stopTestApp } from './support/app.js';
import { REDIS_URL, uniquePrefix } from './support/redis.js';
import { listen, SseClient } from './support/streams.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

/** The recorded day in 5-minute buckets: ~290 points, some 17 KB of JSON. */
const DAY_SERIES = '/series/price?from=2021-07-06T18:00:00Z&to=2021-07-07T18:00:00Z&bucket=5m&aggregation=avg';

describe('response compression (e2e, real Redis)', () => {
  const prefix = uniquePrefix('compress');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  const get = (url: string, acceptEncoding?: string) =>
    app.inject({ method: 'GET', url, headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });

  beforeAll(async () => {
    // 12 hours: a summary over 1 KiB, which the plugin alone would compress.
    ({ redis, upstream, app } = await startTestApp(prefix, loadFixture(), { SUMMARY_HOURS: '12' }));
    expect((await postRefresh(app)).statusCode).toBe(200);
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it('answers a large answer in gzip when the client accepts it, with Vary and no stale length; the same JSON as uncompressed', async () => {
    const plain = await get(DAY_SERIES);
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.rawPayload.length).toBeGreaterThan(10_000);

    const gzip = await get(DAY_SERIES, 'gzip, deflate, br, zstd'); // a browser's
    expect(gzip.headers).toMatchObject({ 'content-encoding': 'gzip', vary: expect.stringMatching(/accept-encoding/i), 'content-type': 'application/json; charset=utf-8' });
    // Chunked when streamed through zlib (the plugin's choice by size and cores), else exact: never the uncompressed length.
    expect([undefined, String(gzip.rawPayload.length)]).toContain(gzip.headers['content-length']);
    expect(gzip.rawPayload.length).toBeLessThan(plain.rawPayload.length / 3);
    expect(gunzipSync(gzip.rawPayload).toString('utf8')).toBe(plain.payload);
    // Security headers and the request id are on it as on any answer.
    expect(gzip.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'x-request-id': expect.any(String) });

    // gzip not offered (or refused): as it is.
    for (const encoding of ['identity', 'br', 'deflate', 'gzip;q=0, br']) {
      const res = await get(DAY_SERIES, encoding);
      expect([encoding, res.headers['content-encoding']]).toEqual([encoding, undefined]);
      expect(res.payload).toBe(plain.payload);
    }
  });

  // RFC 9110, 9.3.2: a HEAD answer has the headers its GET would. Fastify's HEAD routes dropped
  // the body before the plugin saw it, so HEAD said "not compressed, 17 KB" where GET sent gzip.
  it('answers HEAD with the headers of the GET: gzip and Vary when accepted, never the uncompressed length', async () => {
    const head = (url: string, acceptEncoding?: string) =>
      app.inject({ method: 'HEAD', url, headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });
    for (const url of [DAY_SERIES, '/series', '/', '/docs-json']) {
      const got = await get(url, 'gzip');
      const res = await head(url, 'gzip');
      expect([url, res.statusCode, res.rawPayload.length]).toEqual([url, 200, 0]);
      expect([url, res.headers['content-encoding'], res.headers.vary, res.headers['content-type']]).toEqual([url, 'gzip', got.headers.vary, got.headers['content-type']]);
      // The compressed length when the GET sends one (Node's inject does not chunk a HEAD), else none.
      expect([url, res.headers['content-length']]).toEqual([url, got.headers['content-length']]);
    }
    // Not accepted: the uncompressed length, as the GET's.
    const plain = await head(DAY_SERIES);
    expect([plain.headers['content-encoding'], plain.headers['content-length']]).toEqual([undefined, String((await get(DAY_SERIES)).rawPayload.length)]);
    // Routes kept as they are stay so on HEAD too.
    for (const url of ['/is-bitcoin-lit', '/docs/swagger-ui.css']) {
      const res = await head(url, 'gzip');
      expect([url, res.statusCode, res.headers['content-encoding']]).toEqual([url, 200, undefined]);
    }
  });

  it('leaves a small answer as it is (under 1 KiB)', async () => {
    const res = await get('/health/live', 'gzip');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.json()).toMatchObject({ status: 'ok' });
  });

  it('compresses the dashboard, the series catalog, the OpenAPI document (JSON and YAML) and /metrics', async () => {
    for (const url of ['/', '/series', '/docs-json', '/docs-yaml', '/metrics']) {
      const res = await get(url, 'gzip');
      expect([url, res.statusCode, res.headers['content-encoding']]).toEqual([url, 200, 'gzip']);
    }
  });

  // Recompressed on every request, the 1.6 MB script cost ~70 ms of CPU each time, and a client
  // that did not read held the compressor's memory.
  it('sends Swagger UI\'s static script and style as they are', async () => {
    for (const url of ['/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css']) {
      const res = await get(url, 'gzip, br');
      expect([url, res.statusCode, res.headers['content-encoding']]).toEqual([url, 200, undefined]);
    }
  });

  // Its hits are answered from memory ahead of Fastify, uncompressed: a miss must not differ.
  it('sends the summary as it is, on a miss as on a hit', async () => {
    for (const cache of ['MISS', 'HIT']) {
      if (cache === 'MISS') await redis.del(`${prefix}:cache`);
      const res = await get('/is-bitcoin-lit', 'gzip');
      expect([res.statusCode, res.headers['x-cache'], res.headers['content-encoding'], res.headers.vary]).toEqual([200, cache, undefined, undefined]);
      expect(res.rawPayload.length).toBeGreaterThan(1024);
    }
  });

  it('never inflates a request body: POST /refresh with a gzip body is refused like any body that is not empty JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/refresh',
      headers: { ...AUTH, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync('{}'),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ statusCode: 400, error: 'Bad Request' });
  });

  it('sends an event stream uncompressed, whatever the client accepts', async () => {
    const port = await listen(app);
    const sse = await SseClient.open(port, { 'accept-encoding': 'gzip' });
    try {
      expect(sse.response.statusCode).toBe(200);
      expect(sse.response.headers['content-encoding']).toBeUndefined();
    } finally {
      sse.close();
    }
  });
});

describe('response compression off (COMPRESSION_ENABLED=false, e2e)', () => {
  const prefix = uniquePrefix('compress-off');
  let redis: Redis;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', COMPRESSION_ENABLED: 'false' });
  });
  afterAll(() => stopTestApp(prefix, { app, redis }));

  it('answers as it is, for a proxy that compresses', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs-json', headers: { 'accept-encoding': 'gzip' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.rawPayload.length).toBeGreaterThan(10_000);
  });
});
