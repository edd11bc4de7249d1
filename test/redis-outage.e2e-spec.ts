import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { IngestScheduler } from '../src/ingest/ingest.scheduler.js';
import { SentimentIngestService } from '../src/ingest/sentiment-ingest.service.js';
import { NotificationsService } from '../src/notifications/notifications.service.js';
import { RedisKeys } from '../src/redis/redis-keys.service.js';
import { bootApp, postRefresh } from './support/app.js';
import { expectedSummary } from './support/expected-summary.js';
import { FaultRedisServer } from './support/fault-redis.js';
import { FakeUpstream, loadFixture, RawRecord } from './support/upstream.js';
import { sampleCount, storedSamples } from './support/series.js';
import { listen, WsClient } from './support/streams.js';
import { report, waitFor } from './support/wait.js';

// Waits on real processes and timers (reconnects, scheduled runs): more than Jest's default 5 s.
jest.setTimeout(30_000);

const fixture = loadFixture()
  .slice()
  .sort((a, b) => (a.timestamp as number) - (b.timestamp as number));
const firstHalf = fixture.slice(0, 1200);
const PREFIX = 'outage';

/**
 * Settings that make the outage short to test: fast reconnect backoff, and timeouts short yet
 * well above a loaded machine's slowest healthy reply (one spurious timeout would trip the stall
 * breaker and fail the 200s expected around the outage).
 */
const FAST_REDIS = {
  REDIS_KEY_PREFIX: PREFIX,
  REDIS_COMMAND_TIMEOUT_MS: '2000',
  REDIS_CONNECT_TIMEOUT_MS: '2000',
  REDIS_RETRY_BASE_MS: '50',
  REDIS_RETRY_MAX_MS: '500',
  HEALTH_REDIS_TIMEOUT_MS: '1000',
  LOG_LEVEL: 'fatal', // the errors these tests cause on purpose would only be noise
};

/**
 * Redis goes away while the service runs: a private redis-server (AOF, fsync always, so what
 * was written survives the kill like on a production Redis with persistence) is SIGKILLed and
 * started again on the same port while the scheduler ingests every second.
 */
describe('Redis outage while serving (e2e, private redis-server killed and restarted)', () => {
  let server: FaultRedisServer;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let newestCached: unknown;

  const get = (url: string) => app.inject({ method: 'GET', url });
  const metric = async (line: RegExp) => Number(line.exec((await get('/metrics')).body)?.[1] ?? 0);
  // What the test reads of the series goes through a client of its own: the app's has a 500 ms
  // command timeout, which a busy machine can exceed while the catch-up run writes, and the
  // app's reads are not what these checks are about.
  let reader: Redis;
  const count = (metric: string) => sampleCount(reader, `${PREFIX}:${metric}:mean:30s`);

  beforeAll(async () => {
    server = await new FaultRedisServer(true).start();
    reader = new Redis(server.url);
    reader.on('error', () => undefined); // it reconnects by itself once Redis is back
    upstream = await new FakeUpstream(firstHalf).start();
    app = await bootApp({
      ...FAST_REDIS,
      REDIS_URL: server.url,
      SENTIMENT_API_URL: upstream.url,
      SENTIMENT_API_RETRIES: '0',
      INGEST_SCHEDULE_ENABLED: 'true',
      INGEST_ON_STARTUP: 'true',
      INGEST_INTERVAL_MS: '1000',
      // Far longer than the test waits for the catch-up: a lease left behind must be freed, not expire.
      INGEST_LOCK_TTL_MS: '120000',
    });
  });

  afterAll(async () => {
    reader?.disconnect();
    await app?.close();
    await upstream?.stop();
    await server?.stop();
  });

  it('is ready and serves the summary once the first scheduled ingest stored the data', async () => {
    await waitFor('first ingest', async () => (await count('price')) === firstHalf.length);
    const ready = await waitFor('readiness', async () => {
      const r = await get('/health/ready');
      return r.statusCode === 200 && r;
    });
    expect(ready.json()).toMatchObject({
      status: 'ok',
      info: { redis: { status: 'up' }, timeseries: { status: 'up', backend: 'portable' }, ingest: { status: 'up' } },
    });
    const res = await get('/is-bitcoin-lit');
    expect(res.statusCode).toBe(200);
    expect(res.json().hourly_average_of_averages).toEqual(expectedSummary(firstHalf));
  });

  describe('while Redis is down', () => {
    beforeAll(async () => {
      // The kill lands while a scheduled run holds the ingest lease, waiting on the upstream (the
      // upstream moves on during the outage): the lease outlives the restart (AOF) and the run
      // cannot hand it back. Its holder must free it once Redis is back, not wait out its TTL.
      let answer!: () => void;
      const calls = upstream.calls;
      upstream.mode = { kind: 'held', body: fixture, until: new Promise<void>((resolve) => (answer = resolve)) };
      await waitFor('a scheduled run waiting on the upstream', () => upstream.calls > calls);
      // The newest summary cached (the run waiting holds the lease: no other writes one now).
      newestCached = (JSON.parse((await reader.get(app.get(RedisKeys).cache('')))!) as { value: unknown }).value;
      await server.kill('SIGKILL');
      answer();
      // The POST /refresh calls below must start runs of their own, not join this one.
      await app.get(SentimentIngestService).inFlight;
    });

    it('readiness goes red with the reason, liveness stays green', async () => {
      const ready = await get('/health/ready');
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({
        statusCode: 503,
        error: 'Service Unavailable',
        message: 'Not ready: redis, ingest',
        // Its last successes cannot be read: not known, which is no "never ingested".
        details: { redis: { status: 'down' }, ingest: { status: 'down', message: 'not known: Redis is unavailable' } },
        requestId: ready.headers['x-request-id'],
      });
      const live = await get('/health/live');
      expect(live.statusCode).toBe(200);
      expect(live.json()).toMatchObject({ status: 'ok' });
    });

    // The newest this instance saw, not the last one a request computed: it is primed after every
    // ingest run, and hits are answered from memory without passing here.
    it('serves the newest summary it saw, marked STALE with its Age', async () => {
      const res = await get('/is-bitcoin-lit');
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-cache']).toBe('STALE');
      expect(Number(res.headers.age)).toBeGreaterThanOrEqual(0);
      expect(res.json()).toEqual(newestCached);
    });

    it('answers what needs Redis with a fast, clear JSON 503: no hang, no stack, no Redis text', async () => {
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) {
        const started = performance.now();
        const res = await postRefresh(app);
        latencies.push(performance.now() - started);
        expect(res.statusCode).toBe(503);
        expect(res.headers['retry-after']).toBe('5');
        expect(res.json()).toEqual({
          statusCode: 503,
          error: 'Service Unavailable',
          message: 'The data store is temporarily unavailable; try again shortly',
          requestId: res.headers['x-request-id'],
        });
      }
      latencies.sort((a, b) => a - b);
      report('503 latency during outage (ms, p50/max of 20)', [latencies[10].toFixed(2), latencies[19].toFixed(2)]);
    });

    // A handshake is counted against the rate limit before its 101; that count fails open, as
    // the guard's does, rather than shutting every notification client out for the outage.
    it('still accepts WebSocket clients (their rate-limit count fails open)', async () => {
      const port = await listen(app);
      const ws = await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.90' } });
      try {
        await waitFor('the client registered', () => app.get(NotificationsService).clientCount === 1);
        expect(ws.closeCode).toBeUndefined();
      } finally {
        ws.close();
      }
    });

    it('ingest fails cleanly (counted as redis_error, upstream not called) and metrics still answer', async () => {
      // The 20 refreshes above; scheduled ticks skip while they cannot take the ingest lease.
      upstream.calls = 0;
      expect(await metric(/^ingest_runs_total\{outcome="redis_error"\} (\d+)/m)).toBeGreaterThanOrEqual(20);
      // Counted per failed reconnect attempt (the first comes after the first backoff delay).
      await waitFor('a failed reconnect', async () => (await metric(/^redis_errors_total\{kind="connection"\} (\d+)/m)) > 0);
      expect(await metric(/^cache_requests_total\{result="stale"\} (\d+)/m)).toBeGreaterThan(0);
      expect((await postRefresh(app)).statusCode).toBe(503);
      expect(upstream.calls).toBe(0);
    });
  });

  describe('after Redis comes back', () => {
    let restartedAt: number;
    beforeAll(async () => {
      await server.restart();
      restartedAt = performance.now();
    });

    it('reconnects by itself and is ready again within seconds', async () => {
      await waitFor('readiness after restart', async () => (await get('/health/ready')).statusCode === 200, { intervalMs: 25 });
      report('readiness recovery after Redis restart (ms)', Math.round(performance.now() - restartedAt));
    });

    it('the next scheduled run stores everything missed: nothing lost, nothing doubled', async () => {
      await waitFor('catch-up ingest', async () => (await count('price')) === fixture.length);
      report('catch-up after Redis restart (ms)', Math.round(performance.now() - restartedAt));
      expect(await count('sentiment')).toBe(fixture.length);
      // Same samples as the upstream serves, each exactly once.
      const stored = (await storedSamples(reader, `${PREFIX}:price:mean:30s`)).map((s) => s.timestamp);
      expect(stored).toEqual(fixture.map((r: RawRecord) => Math.trunc((r.timestamp as number) * 1000)));
      const summary = await waitFor('fresh summary', async () => {
        const r = await get('/is-bitcoin-lit');
        return r.statusCode === 200 && r.headers['x-cache'] !== 'STALE' && r.json().hourly_average_of_averages[2]?.time === expectedSummary(fixture)[2].time && r;
      });
      expect(summary.json().hourly_average_of_averages).toEqual(expectedSummary(fixture));
    });
  });
});

describe('Redis down at startup (e2e)', () => {
  let server: FaultRedisServer;
  let app: NestFastifyApplication | undefined;

  beforeAll(async () => {
    server = await new FaultRedisServer(false).start();
    await server.kill('SIGKILL'); // a port where Redis will come up later
  });
  afterAll(async () => {
    await app?.close();
    await server?.stop();
  });

  it('REDIS_STARTUP_MODE=wait (default) gives up after REDIS_STARTUP_WAIT_MS with one line', async () => {
    await expect(bootApp({ ...FAST_REDIS, REDIS_URL: server.url, REDIS_STARTUP_WAIT_MS: '300', LOG_LEVEL: 'fatal' })).rejects.toThrow(
      new RegExp(`^Redis at redis://127\\.0\\.0\\.1:${server.port}/? is not reachable after 300 ms \\([^\\n]*\\)$`),
    );
  });

  it('REDIS_STARTUP_MODE=degraded starts, is live but not ready, answers 503, and becomes ready when Redis comes', async () => {
    app = await bootApp({ ...FAST_REDIS, REDIS_URL: server.url, REDIS_STARTUP_MODE: 'degraded', HEALTH_INGEST_MAX_AGE_MS: '0', LOG_LEVEL: 'fatal' });
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().details).toMatchObject({ redis: { status: 'down' }, timeseries: { status: 'down', message: 'backend not probed yet' } });
    const summary = await app.inject({ method: 'GET', url: '/is-bitcoin-lit' });
    expect(summary.statusCode).toBe(503); // nothing good served yet by this instance: no stale copy
    expect(summary.json()).toMatchObject({ statusCode: 503, message: 'The data store is temporarily unavailable; try again shortly' });
    // Not a 500 while the backend is unknown (twa is for the backend to refuse, once it answers).
    expect((await app.inject({ method: 'GET', url: '/series/price?aggregation=twa' })).statusCode).toBe(503);

    await server.restart();
    // No data request needed (a load balancer sends none to an unready instance): the backend
    // is probed once Redis is there, or by readiness itself.
    const after = await waitFor('ready', async () => {
      const r = await app!.inject({ method: 'GET', url: '/health/ready' });
      return r.statusCode === 200 && r;
    });
    expect(after.json().info).toMatchObject({ redis: { status: 'up' }, timeseries: { backend: 'portable' } });
  });

  // The startup run could not reach Redis; the next came INGEST_INTERVAL_MS later, and readiness
  // (no ingest recorded yet) stayed red on every instance until then.
  it('REDIS_STARTUP_MODE=degraded with the schedule on: the run Redis made it miss runs as soon as Redis comes, not an interval later', async () => {
    await server.kill('SIGKILL');
    const upstream = await new FakeUpstream(firstHalf).start();
    const late = await bootApp({
      ...FAST_REDIS,
      REDIS_URL: server.url,
      REDIS_STARTUP_MODE: 'degraded',
      SENTIMENT_API_URL: upstream.url,
      INGEST_SCHEDULE_ENABLED: 'true',
      INGEST_ON_STARTUP: 'true',
      INGEST_INTERVAL_MS: '600000', // far past what the test waits
      HEALTH_INGEST_MAX_AGE_MS: '1200000',
      LOG_LEVEL: 'fatal',
    });
    try {
      await waitFor('the startup run, skipped', () => late.get(IngestScheduler).schedules[0].missed);
      expect(upstream.calls).toBe(0);
      await server.restart();
      await waitFor('ready, with an ingest recorded', async () => (await late.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200);
      expect(upstream.calls).toBe(1);
    } finally {
      await late.close();
      await upstream.stop();
    }
  });
});

/**
 * The schedule after Redis comes back, with an interval far past what the tests wait: each
 * must catch up on Redis's return, not an interval later.
 */
describe('Redis back while the schedule waits (e2e, private redis-server killed and restarted)', () => {
  const slowSchedule = {
    ...FAST_REDIS,
    REDIS_KEY_PREFIX: 'outage-back',
    SENTIMENT_API_RETRIES: '0',
    INGEST_SCHEDULE_ENABLED: 'true',
    INGEST_ON_STARTUP: 'true',
    INGEST_INTERVAL_MS: '600000',
    HEALTH_INGEST_MAX_AGE_MS: '1200000',
    INGEST_LOCK_TTL_MS: '120000',
    LOG_LEVEL: 'fatal',
  };

  // Its lease outlived the restart (AOF), kept to the end of a tick whose run stored nothing.
  it('a run cut short by the outage runs again as soon as Redis is back, though Redis kept its lease', async () => {
    const server = await new FaultRedisServer(true).start();
    let answer!: () => void;
    const upstream = await new FakeUpstream(firstHalf).start();
    upstream.mode = { kind: 'held', body: firstHalf, until: new Promise<void>((resolve) => (answer = resolve)) };
    const reader = new Redis(server.url);
    reader.on('error', () => undefined);
    let app: NestFastifyApplication | undefined;
    try {
      app = await bootApp({ ...slowSchedule, REDIS_URL: server.url, SENTIMENT_API_URL: upstream.url });
      await waitFor('the startup run waiting on the upstream', () => upstream.calls === 1);
      await server.kill('SIGKILL');
      answer();
      await app.get(SentimentIngestService).inFlight;
      await server.restart();
      await waitFor('the run again, stored', async () => (await sampleCount(reader, 'outage-back:price:mean:30s').catch(() => 0)) === firstHalf.length);
      expect(upstream.calls).toBe(2);
    } finally {
      reader.disconnect();
      await app?.close();
      await upstream.stop();
      await server.stop();
    }
  });

  // No tick fell inside the outage; Redis lost everything, the record of the last ingest too.
  it('Redis back empty between two ticks: every source runs at once, and the instance is ready again', async () => {
    const server = await new FaultRedisServer(false).start();
    const upstream = await new FakeUpstream(firstHalf).start();
    let app: NestFastifyApplication | undefined;
    try {
      app = await bootApp({ ...slowSchedule, REDIS_URL: server.url, SENTIMENT_API_URL: upstream.url });
      const ready = async () => (await app!.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200;
      await waitFor('ready after the startup run', ready);
      await server.kill('SIGKILL');
      await server.restart();
      await waitFor('ready again', ready);
      expect(upstream.calls).toBe(2);
    } finally {
      await app?.close();
      await upstream.stop();
      await server.stop();
    }
  });
});

describe('Redis refusing writes after a failed save (MISCONF) (e2e, private redis-server)', () => {
  let server: FaultRedisServer;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    server = await new FaultRedisServer(false).start();
    app = await bootApp({ ...FAST_REDIS, REDIS_URL: server.url, SENTIMENT_API_URL: 'http://127.0.0.1:9/none' });
    await server.failSaves();
  });
  afterAll(async () => {
    await app?.close();
    await server?.stop();
  });

  it('still serves reads (the rate limit fails open, as for any Redis outage), and readiness says MISCONF without the server\'s text', async () => {
    for (const url of ['/verdict', '/series/price?bucket=1h', '/series']) {
      const res = await app.inject({ method: 'GET', url });
      expect([url, res.statusCode]).toEqual([url, 200]);
    }
    // What must write is a 503, like any Redis outage.
    expect((await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).statusCode).toBe(503);
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().details.redis).toMatchObject({ status: 'down', message: 'Redis refused the command (MISCONF)' });
    expect(ready.body).not.toMatch(/RDB|snapshot|disk/i);
  });
});
