import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { MetricsService } from '../src/metrics/metrics.service.js';
import { AUTH, bootApp, postRefresh } from './support/app.js';
import { FaultRedisServer } from './support/fault-redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { listen, silentWebSocket } from './support/streams.js';
import { sleep, waitFor } from './support/wait.js';

jest.setTimeout(30_000);

const PREFIX = 'stall';
const COMMAND_TIMEOUT_MS = 2500;
/**
 * Longer than one command timeout and shorter than two: a request that pays one timeout is
 * answered while Redis is still paused; one that pays two (or waits for Redis) only after. The
 * 2.3 s between one timeout and the pause's end are for a loaded CI machine's late timers.
 */
const PAUSE_MS = 4800;

interface Answer {
  url: string;
  status: number;
  cache?: string;
  /** Whether Redis was still paused when the answer came. */
  beforeRedisAnswered: boolean;
}

/**
 * Pauses the server's Redis for PAUSE_MS and runs `work` meanwhile; `stillPaused()` tells whether
 * Redis has answered again yet (a PING sent on another connection, held by the pause like the app's).
 */
async function pausing<T>(server: FaultRedisServer, admin: Redis, work: (stillPaused: () => boolean) => Promise<T>): Promise<T> {
  const watcher = new Redis(server.url);
  await watcher.ping();
  try {
    await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
    let redisAnswered = false;
    const resumed = watcher.ping().then(() => (redisAnswered = true));
    const result = await work(() => !redisAnswered);
    await resumed;
    return result;
  } finally {
    watcher.disconnect();
  }
}

/**
 * A private redis-server that the test can pause, the recorded feed on loopback, an app on
 * them (`env` added to the common settings) that has ingested once, and an admin connection;
 * all stopped afterwards.
 */
function stallWorld(env: Record<string, string>) {
  const world = {
    server: undefined as unknown as FaultRedisServer,
    upstream: undefined as unknown as FakeUpstream,
    app: undefined as unknown as NestFastifyApplication,
    admin: undefined as unknown as Redis,
  };
  beforeAll(async () => {
    world.server = await new FaultRedisServer(false).start();
    world.upstream = await new FakeUpstream(loadFixture()).start();
    world.admin = new Redis(world.server.url);
    world.app = await bootApp({ REDIS_URL: world.server.url, SENTIMENT_API_URL: world.upstream.url, LOG_LEVEL: 'fatal', ...env });
    expect((await postRefresh(world.app)).statusCode).toBe(200);
  });
  afterAll(async () => {
    await world.app?.close();
    world.admin?.disconnect();
    await world.upstream?.stop();
    await world.server?.stop();
  });
  return world;
}

/**
 * Redis stalls (a private redis-server paused with CLIENT PAUSE … ALL: connections stay open,
 * commands get no reply, like DEBUG SLEEP or an overloaded server) while the service serves.
 * Every route must answer — 503, or the stale summary — after at most one command timeout,
 * whatever sequence of Redis calls it makes (rate-limit guard, cache read, summary, history).
 */
describe('Redis stall while serving (e2e, private redis-server paused)', () => {
  const world = stallWorld({
    REDIS_KEY_PREFIX: PREFIX,
    SENTIMENT_API_RETRIES: '0',
    REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
    HEALTH_REDIS_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
    // Rate limiting on, so the guard's Redis call precedes the handler's on limited routes.
    THROTTLE_LIMIT: '1000',
    THROTTLE_REFRESH_LIMIT: '1000',
    HEALTH_INGEST_MAX_AGE_MS: '0',
  });

  const whilePaused = <T>(work: (stillPaused: () => boolean) => Promise<T>) => pausing(world.server, world.admin, work);

  /** Pauses Redis, sends the requests, and tells for each whether it was answered while Redis was still paused. */
  function duringPause(requests: Array<{ method?: 'GET' | 'POST'; url: string; headers?: Record<string, string> }>): Promise<Answer[]> {
    return whilePaused((stillPaused) =>
      Promise.all(
        requests.map(async ({ method = 'GET', url, headers }) => {
          const res = await world.app.inject({ method, url, headers });
          return { url, status: res.statusCode, cache: res.headers['x-cache'] as string | undefined, beforeRedisAnswered: stillPaused() };
        }),
      ),
    );
  }

  it('answers every route with a 503 or the stale summary before Redis answers again, then recovers', async () => {
    // A summary served before the stall: the instance's stale copy.
    const before = await world.app.inject({ method: 'GET', url: '/is-bitcoin-lit' });
    expect(before.statusCode).toBe(200);

    const answers = await duringPause([
      { url: '/is-bitcoin-lit' },
      { url: '/series/price' },
      { url: '/series/combined?bucket=1d' },
      { url: '/series' },
      { url: '/health/ready' },
      { method: 'POST', url: '/refresh', headers: AUTH },
    ]);

    expect(answers).toEqual([
      { url: '/is-bitcoin-lit', status: 200, cache: 'STALE', beforeRedisAnswered: true },
      { url: '/series/price', status: 503, beforeRedisAnswered: true },
      { url: '/series/combined?bucket=1d', status: 503, beforeRedisAnswered: true },
      { url: '/series', status: 503, beforeRedisAnswered: true },
      { url: '/health/ready', status: 503, beforeRedisAnswered: true },
      { url: '/refresh', status: 503, beforeRedisAnswered: true },
    ]);

    // Once Redis answers, so does the service (the stall did not stick).
    await waitFor('recovery', async () => (await world.app.inject({ method: 'GET', url: '/series/price' })).statusCode === 200);
    const after = await world.app.inject({ method: 'GET', url: '/is-bitcoin-lit' });
    expect(after.statusCode).toBe(200);
    expect(after.headers['x-cache']).not.toBe('STALE');
    expect((await world.app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
  });

  it('a request that arrives while a stall is already known pays no timeout at all', async () => {
    await whilePaused(async (stillPaused) => {
      // The first request pays the timeout and reveals the stall…
      expect((await world.app.inject({ method: 'GET', url: '/series/price' })).statusCode).toBe(503);
      // …the next ones are answered without waiting on Redis again, still during the pause.
      const next = await world.app.inject({ method: 'GET', url: '/series/sentiment' });
      const answeredDuringPause = stillPaused();
      expect({ status: next.statusCode, answeredDuringPause }).toEqual({ status: 503, answeredDuringPause: true });
      // Ingest does not call the world.upstream for data it could not store.
      const calls = world.upstream.calls;
      expect((await postRefresh(world.app)).statusCode).toBe(503);
      expect(world.upstream.calls).toBe(calls);
      expect(next.json()).toMatchObject({ statusCode: 503, message: 'The data store is temporarily unavailable; try again shortly' });
      expect(next.headers['retry-after']).toBe('5');
    });
    await waitFor('recovery', async () => (await world.app.inject({ method: 'GET', url: '/series/sentiment' })).statusCode === 200);
  });

  it('recovers when the stalled Redis is killed and comes back (the handshake on the new socket is not refused)', async () => {
    await world.admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
    // A request reveals the stall…
    expect((await world.app.inject({ method: 'GET', url: '/series/price' })).statusCode).toBe(503);
    // …and the paused world.server is replaced (a failover, a liveness probe killing a hung Redis).
    await world.server.kill();
    await world.server.restart();
    await waitFor('readiness after the restart', async () => (await world.app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200, {
      timeoutMs: 15_000,
    });
    expect((await world.app.inject({ method: 'GET', url: '/series/price' })).statusCode).toBe(200);
  });
});

/**
 * Readiness during a stall answers within HEALTH_REDIS_TIMEOUT_MS, every Redis read it makes
 * included (the PING and each source's last success), even when a command would wait longer
 * than the stall itself (REDIS_COMMAND_TIMEOUT_MS here outlasts the pause).
 */
describe('Readiness during a Redis stall (e2e, private redis-server paused)', () => {
  const world = stallWorld({ REDIS_KEY_PREFIX: `${PREFIX}-ready`, REDIS_COMMAND_TIMEOUT_MS: String(3 * PAUSE_MS), HEALTH_REDIS_TIMEOUT_MS: '300' });
  beforeAll(async () => {
    // Waited for: before the stall, one slow reply could still exceed the 300 ms.
    await waitFor('ready', async () => (await world.app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200);
  });

  it('is a 503 naming Redis and the ingest check, answered while Redis is still paused', async () => {
    const answer = await pausing(world.server, world.admin, async (stillPaused) => {
      const res = await world.app.inject({ method: 'GET', url: '/health/ready' });
      return { status: res.statusCode, body: res.json(), beforeRedisAnswered: stillPaused() };
    });
    expect(answer).toMatchObject({
      status: 503,
      beforeRedisAnswered: true,
      body: {
        message: 'Not ready: redis, ingest',
        details: { redis: { status: 'down' }, ingest: { status: 'down', message: 'Redis did not answer within 300 ms' } },
      },
    });
    await waitFor('readiness after the stall', async () => (await world.app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200);
  });
});

/**
 * History computed from raw samples over more than a day (std.p here) is one long script per
 * read on plain Redis. While Redis is busy (paused here, so nothing finishes), at most
 * SERIES_RAW_READS such reads are sent, 16 per slot wait their turn, and a burst beyond that is
 * refused at once instead of queueing more work ahead of every other command.
 */
describe('Long raw history reads while Redis is busy (e2e, private redis-server paused)', () => {
  const world = stallWorld({
    REDIS_KEY_PREFIX: PREFIX,
    SENTIMENT_API_RETRIES: '0',
    // Nothing times out during the pause: only the gate can answer early.
    REDIS_COMMAND_TIMEOUT_MS: '10000',
    THROTTLE_LIMIT: '1000',
    SERIES_RAW_READS: '1',
  });
  const longRead = '/series/price?from=2021-07-05T17:00:00Z&to=2021-07-07T17:30:00Z&bucket=1h&aggregation=std.p';

  it('sends one, queues sixteen and refuses the rest with a 503 and Retry-After; the queued ones are answered once Redis is', async () => {
    const before = await world.app.inject({ method: 'GET', url: longRead });
    expect(before.statusCode).toBe(200);
    const answers = await pausing(world.server, world.admin, (stillPaused) =>
      Promise.all(
        Array.from({ length: 19 }, async () => {
          const res = await world.app.inject({ method: 'GET', url: longRead });
          return { status: res.statusCode, retryAfter: res.headers['retry-after'], body: res.json(), beforeRedisAnswered: stillPaused() };
        }),
      ),
    );
    const refused = answers.filter((a) => a.status === 503);
    expect(refused).toHaveLength(2);
    for (const a of refused) {
      expect(a).toMatchObject({ retryAfter: '1', beforeRedisAnswered: true, body: { message: 'Too many long history queries are running; retry shortly' } });
    }
    const served = answers.filter((a) => a.status === 200);
    expect(served).toHaveLength(17);
    for (const a of served) expect(a.body).toEqual(before.json());
  });
});

/**
 * A WebSocket handshake waits for its rate-limit count (in Redis) before its 101. Caught there by
 * a shutdown, it was closed unanswered by the shutdown's sweep (no response is in progress on
 * it), or answered by `ws` in text/html once the count came back.
 */
describe('A WebSocket handshake waiting on a stalled Redis at shutdown (e2e, private redis-server paused)', () => {
  const world = stallWorld({
    REDIS_KEY_PREFIX: `${PREFIX}-ws`,
    REDIS_COMMAND_TIMEOUT_MS: String(3 * PAUSE_MS),
    THROTTLE_LIMIT: '1000',
    HEALTH_INGEST_MAX_AGE_MS: '0',
  });

  it('gets the API’s 503 with Retry-After, and the connection closes', async () => {
    const port = await listen(world.app);
    const app = world.app;
    world.app = undefined as unknown as NestFastifyApplication; // closed here, not by afterAll
    const handshake = await pausing(world.server, world.admin, async () => {
      const sent = await silentWebSocket(port, { 'X-Request-Id': 'ws-at-shutdown' });
      await sleep(300); // its count is waiting on Redis
      expect(sent.head()).toBe('');
      const closing = app.close();
      await waitFor('answered and closed', () => sent.closed(), { timeoutMs: 10_000 });
      await closing;
      return sent;
    });
    const received = handshake.head();
    const [head, body] = received.split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
    expect(head).toMatch(/\r\nretry-after: 1\r\n/);
    expect(head).toMatch(/\r\ncontent-type: application\/json; charset=utf-8\r\n/);
    expect(JSON.parse(body)).toEqual({ statusCode: 503, error: 'Service Unavailable', message: 'Server shutting down; try again', requestId: 'ws-at-shutdown' });
    // Timed in the metrics as a request would be (read from the closed app: nothing scrapes it now).
    expect(await app.get(MetricsService).render()).toMatch(/\nhttp_request_duration_seconds_count\{method="GET",route="\/ws\/notifications",status="503"\} 1\n/);
  });
});
