import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { AddressInfo, connect, createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { TEST_REFRESH_TOKEN } from './support/app.js';
import { AppProcess, builtApp } from './support/process.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { sampleCount } from './support/series.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { freePort, waitFor } from './support/wait.js';

const fixture = loadFixture();

/** The real process (`node main.js`) receives the signals and reports its exit code. */
describe('process lifecycle (e2e, real node process)', () => {
  let main: string;
  let redis: Redis;
  let upstream: FakeUpstream;
  const prefix = uniquePrefix('shutdown');
  const running: AppProcess[] = [];
  const start = (env: Record<string, string>, cwd?: string) => {
    const p = new AppProcess(
      main,
      {
        HOST: '127.0.0.1',
        PORT: '0',
        REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        SENTIMENT_API_URL: upstream.url,
        REFRESH_TOKEN: TEST_REFRESH_TOKEN,
        LOG_LEVEL: 'log',
        ...env,
      },
      cwd,
    );
    running.push(p);
    return p;
  };

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    main = await builtApp();
    upstream = await new FakeUpstream(fixture).start();
  }, 120_000);
  afterAll(async () => {
    for (const p of running) await p.stop();
    await upstream?.stop();
    await deleteKeys(redis, prefix);
    await redis?.quit();
  });

  it('SIGTERM during an ingest run and under request load: requests finish, the run completes, Redis is quit, exit 0', async () => {
    // The run's poll is held by the upstream until the test lets it go: in flight at SIGTERM,
    // however slow the machine.
    let release!: () => void;
    upstream.mode = { kind: 'held', body: fixture, until: new Promise<void>((resolve) => (release = resolve)) };
    upstream.calls = 0;
    // The age check off: readiness is green before SIGTERM although the first run has not stored
    // yet, so red afterwards can only be the shutdown's doing.
    const app = start({ INGEST_ON_STARTUP: 'true', INGEST_SCHEDULE_ENABLED: 'true', HEALTH_INGEST_MAX_AGE_MS: '0' });
    const base = await app.ready();
    await waitFor('ingest run in progress', async () => upstream.calls >= 1);
    const before = await fetch(`${base}/health/ready`);
    expect({ status: before.status, body: await before.json() }).toMatchObject({ status: 200, body: { status: 'ok' } });

    // In flight at SIGTERM: a refresh that joins the running ingest, and a burst of reads.
    const refresh = fetch(`${base}/refresh`, { method: 'POST', headers: { authorization: `Bearer ${TEST_REFRESH_TOKEN}` } });
    const reads = Array.from({ length: 50 }, (_, i) => fetch(`${base}/${i % 2 ? 'health/live' : 'metrics'}`).then((r) => r.status));
    // Counted by its rate limit: the refresh is past the guards and joins the held run next.
    await waitFor('refresh accepted', () => hasKey(redis, `*${prefix}:throttle:refresh:*`));
    app.kill('SIGTERM');
    // Green until the signal is handled, then the shutdown's own 503, while the held run keeps the
    // server open: a connection error fails the test (no catch), and so does any other answer.
    const red = await waitFor('readiness red while shutting down', async () => {
      const r = await fetch(`${base}/health/ready`);
      const answer = { status: r.status, body: (await r.json()) as Record<string, unknown> };
      return r.status === 200 ? null : answer;
    });
    expect(red).toEqual({ status: 503, body: expect.objectContaining({ statusCode: 503, message: 'Not ready: shutting down' }) });
    expect(app.lines.map((l) => l.msg)).toContain('SIGTERM: shutting down gracefully');
    // Every read gets an answer while the held run keeps the server open: 200, or, if it reached
    // the server after SIGTERM, the 503 that tells a load balancer to go elsewhere (never a reset
    // connection).
    const statuses = await Promise.all(reads);
    expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(statuses).toContain(200);
    expect(upstream.calls).toBe(1); // the refresh joined the run instead of starting one
    release();

    const res = await refresh;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ fetched: 2474, stored: 4948, rejected: 0 });
    expect(await app.exited).toEqual({ code: 0, signal: null });
    // The run completed: every sample is there (none half-written), and the log says so.
    expect(await sampleCount(redis, `${prefix}:price:mean:30s`)).toBe(2474);
    expect(await sampleCount(redis, `${prefix}:sentiment:mean:30s`)).toBe(2474);
    const messages = app.lines.map((l) => String(l.msg));
    expect(messages).toEqual(expect.arrayContaining(['SIGTERM: shutting down gracefully', 'Redis connection closed']));
    const ingestOk = messages.findIndex((m) => m.startsWith('ingest ok'));
    expect(ingestOk).toBeGreaterThanOrEqual(0);
    expect(ingestOk).toBeLessThan(messages.indexOf('Redis connection closed'));
    // JSON lines with a level; request lines carry the request id.
    expect(app.lines.every((l) => !l.unparsed && typeof l.level === 'number')).toBe(true);
    const requestLines = app.lines.filter((l) => l.req);
    expect(requestLines.length).toBeGreaterThan(0);
    expect(requestLines.every((l) => typeof (l.req as { id?: unknown }).id === 'string')).toBe(true);
    expect(JSON.stringify(app.lines)).not.toContain(TEST_REFRESH_TOKEN);
  }, 60_000);

  it('stalled clients do not hold the shutdown, a request in flight is still answered, a second SIGTERM changes nothing', async () => {
    let release!: () => void;
    upstream.mode = { kind: 'held', body: fixture, until: new Promise<void>((resolve) => (release = resolve)) };
    upstream.calls = 0;
    // SHUTDOWN_TIMEOUT_MS past the test's own timeout would hide a hang; this one turns it into exit 1.
    const app = start({ INGEST_ON_STARTUP: 'false', INGEST_SCHEDULE_ENABLED: 'false', SHUTDOWN_TIMEOUT_MS: '20000' });
    const base = new URL(await app.ready());
    // Half a request head, and a body shorter than its Content-Length: no answer can come on either.
    const stalled = await Promise.all(
      ['GET /health/live HTTP/1.1\r\nHost: x\r\n', 'POST /refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"'].map(
        async (bytes) => {
          const socket = connect(Number(base.port), base.hostname);
          await once(socket, 'connect');
          socket.write(bytes);
          return { closed: once(socket, 'close'), socket };
        },
      ),
    );
    const refresh = fetch(`${base.origin}/refresh`, { method: 'POST', headers: { authorization: `Bearer ${TEST_REFRESH_TOKEN}` } });
    await waitFor('the refresh to reach the upstream', async () => upstream.calls >= 1);
    app.kill('SIGTERM');
    await waitFor('shutdown to start', async () => app.lines.some((l) => l.msg === 'SIGTERM: shutting down gracefully'));
    app.kill('SIGTERM');
    release(); // the shutdown waits for the run, then closes the server
    expect((await refresh).status).toBe(200);
    await Promise.all(stalled.map((s) => s.closed));
    expect(await app.exited).toEqual({ code: 0, signal: null });
    expect(app.lines.map((l) => l.msg)).toContain('SIGTERM: already shutting down');
  }, 60_000);

  it('a signal while startup waits for Redis: exit 0, said in one line', async () => {
    // A "Redis" that accepts and never answers: its first connection says startup is under way.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const app = start({ REDIS_URL: `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`, REDIS_STARTUP_WAIT_MS: '30000' });
      await waitFor('startup to reach Redis', async () => sockets.length > 0);
      app.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(app.stderr).toBe('is-bitcoin-lit: SIGTERM during startup; exiting\n');
    } finally {
      sockets.forEach((s) => s.destroy());
      silent.close();
    }
  }, 30_000);

  it('Redis down at startup (REDIS_STARTUP_MODE=wait): exits 1 with one line naming the reason', async () => {
    const port = await freePort();
    const app = start({ REDIS_URL: `redis://:secret-pass@127.0.0.1:${port}`, REDIS_STARTUP_WAIT_MS: '500', LOG_LEVEL: 'log' });
    expect(await app.exited).toEqual({ code: 1, signal: null });
    expect(app.stderr).toBe(`is-bitcoin-lit failed to start: Redis at redis://:***@127.0.0.1:${port} is not reachable after 500 ms (connect ECONNREFUSED 127.0.0.1:${port})\n`);
    expect(JSON.stringify(app.lines)).not.toContain('secret-pass');
  }, 30_000);

  it('reads .env from its working directory, under the real environment: TRUST_PROXY there puts each forwarded client in its own rate limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'is-bitcoin-lit-env-'));
    try {
      // LOG_LEVEL=error here would hide the "Listening on" line: the environment's 'log' wins.
      writeFileSync(join(dir, '.env'), 'TRUST_PROXY=true\nTHROTTLE_LIMIT=1\nLOG_LEVEL=error\n');
      const app = start({ INGEST_ON_STARTUP: 'false', INGEST_SCHEDULE_ENABLED: 'false' }, dir);
      const base = await app.ready();
      const from = async (ip: string) => (await fetch(`${base}/series`, { headers: { 'x-forwarded-for': ip } })).status;
      expect(await from('203.0.113.1')).not.toBe(429);
      expect(await from('203.0.113.1')).toBe(429); // THROTTLE_LIMIT=1, from .env
      expect(await from('203.0.113.2')).not.toBe(429); // another client: the proxy header is trusted
      app.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Whether some key matches `pattern` (a whole SCAN: one call may return none of the matches). */
async function hasKey(redis: Redis, pattern: string): Promise<boolean> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) return true;
    cursor = next;
  } while (cursor !== '0');
  return false;
}
