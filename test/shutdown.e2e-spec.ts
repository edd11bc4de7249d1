import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { AddressInfo, connect, createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { TEST_REFRESH_TOKEN } from './support/app.js';
import { AppProcess, builtApp } from './support/process.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { sampleCount } from './support/series.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { freePort, waitFor } from './support/wait.js';

const fixture = loadFixture();
/** Preloaded into the process: SIGUSR2 throws from a timer (or rejects a promise nothing handles). */
const CRASH_ON_SIGNAL = ['--import', fileURLToPath(new URL('./support/crash-on-signal.mjs', import.meta.url))];
/** Preloaded into the process: a stdout line once the app's SIGTERM handler is in place. */
const SIGNAL_HANDLERS_READY = ['--import', fileURLToPath(new URL('./support/signal-handlers-ready.mjs', import.meta.url))];

/**
 * SHUTDOWN_DRAIN_MS in the drain tests: long enough for a loaded CI machine to see readiness
 * red and send its requests before the listener closes (a refused connection fails them).
 */
const DRAIN_MS = 4000;

/** A TCP server on a free loopback port that accepts every connection and never answers. */
async function silentServer(): Promise<{ port: number; sockets: Socket[]; close: () => void }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    },
  };
}

/** The real process (`node main.js`) receives the signals and reports its exit code. */
describe('process lifecycle (e2e, real node process)', () => {
  let main: string;
  let redis: Redis;
  let upstream: FakeUpstream;
  const prefix = uniquePrefix('shutdown');
  const running: AppProcess[] = [];
  const start = (env: Record<string, string>, cwd?: string, nodeArgs?: string[]) => {
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
      nodeArgs,
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

  it('SIGTERM during an ingest run: the upstream call is aborted at once, the refresh that joined it is answered, Redis is quit, exit 0', async () => {
    // The run's poll is held by the upstream and never let go before the process has exited:
    // only the shutdown's abort can end it.
    let release!: () => void;
    upstream.mode = { kind: 'held', body: fixture, until: new Promise<void>((resolve) => (release = resolve)) };
    upstream.calls = 0;
    // The age check off: readiness is green before SIGTERM although the first run has not stored.
    const app = start({ INGEST_ON_STARTUP: 'true', INGEST_SCHEDULE_ENABLED: 'true', HEALTH_INGEST_MAX_AGE_MS: '0' });
    try {
      const base = await app.ready();
      await waitFor('ingest run in progress', async () => upstream.calls >= 1);
      const before = await fetch(`${base}/health/ready`);
      expect({ status: before.status, body: await before.json() }).toMatchObject({ status: 200, body: { status: 'ok' } });

      // In flight at SIGTERM: a refresh that joins the running ingest.
      const refresh = fetch(`${base}/refresh`, { method: 'POST', headers: { authorization: `Bearer ${TEST_REFRESH_TOKEN}` } });
      // Counted by its rate limit: the refresh is past the guards and joins the held run next.
      await waitFor('refresh accepted', () => hasKey(redis, `*${prefix}:throttle:refresh:*`));
      const signalled = Date.now();
      app.kill('SIGTERM');

      // The run fails as transient, without a retry, and the refresh gets its reason.
      const res = await refresh;
      expect({ status: res.status, message: ((await res.json()) as { message: string }).message }).toEqual({
        status: 502,
        message: 'Ingest failed: upstream call aborted: the service is shutting down (attempt 1 of 3)',
      });
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalled).toBeLessThan(9000); // UPSTREAM_TIMEOUT_MS alone is 10 s
      expect(upstream.calls).toBe(1);
      // Nothing was fetched, so nothing is stored (and nothing half).
      expect(await sampleCount(redis, `${prefix}:price:mean:30s`)).toBe(0);
      const messages = app.lines.map((l) => String(l.msg));
      expect(messages).toEqual(expect.arrayContaining(['SIGTERM: shutting down gracefully', 'Redis connection closed']));
      const failed = messages.findIndex((m) => m.startsWith('ingest failed (upstream_error)') && m.endsWith('the service is shutting down (attempt 1 of 3)'));
      expect(failed).toBeGreaterThanOrEqual(0);
      expect(failed).toBeLessThan(messages.indexOf('Redis connection closed'));
      // JSON lines with a level; request lines carry the request id.
      expect(app.lines.every((l) => !l.unparsed && typeof l.level === 'number')).toBe(true);
      const requestLines = app.lines.filter((l) => l.req);
      expect(requestLines.length).toBeGreaterThan(0);
      expect(requestLines.every((l) => typeof (l.req as { id?: unknown }).id === 'string')).toBe(true);
      expect(JSON.stringify(app.lines)).not.toContain(TEST_REFRESH_TOKEN);
    } finally {
      release();
    }
  }, 60_000);

  it('SHUTDOWN_DRAIN_MS: from SIGTERM readiness is red while it keeps serving; reads in flight and sent meanwhile are answered, then exit 0', async () => {
    const app = start({ INGEST_ON_STARTUP: 'false', INGEST_SCHEDULE_ENABLED: 'false', HEALTH_INGEST_MAX_AGE_MS: '0', SHUTDOWN_DRAIN_MS: String(DRAIN_MS) });
    const base = await app.ready();
    expect((await fetch(`${base}/health/ready`)).status).toBe(200);
    const reads = Array.from({ length: 50 }, (_, i) => fetch(`${base}/${i % 2 ? 'health/live' : 'verdict'}`).then((r) => r.status));
    const signalled = Date.now();
    app.kill('SIGTERM');
    // Through the real signal path: green until the signal is handled, then the shutdown's 503,
    // while the drain keeps the server open (a refused connection fails the test).
    const red = await waitFor('readiness red while draining', async () => {
      const r = await fetch(`${base}/health/ready`);
      const answer = { status: r.status, body: (await r.json()) as Record<string, unknown> };
      return r.status === 200 ? null : answer;
    });
    expect(red).toEqual({ status: 503, body: expect.objectContaining({ statusCode: 503, message: 'Not ready: shutting down' }) });
    // Still serving during the drain: what a load balancer sends before it notices is answered.
    expect((await fetch(`${base}/verdict`)).status).toBe(200);
    const statuses = await Promise.all(reads);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(await app.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(DRAIN_MS);
    expect(app.lines.map((l) => String(l.msg))).toEqual(
      expect.arrayContaining(['SIGTERM: shutting down gracefully', `readiness is 503; serving ${DRAIN_MS} ms more (SHUTDOWN_DRAIN_MS) before closing`, 'Redis connection closed']),
    );
  }, 30_000);

  it('SIGTERM with the defaults while a venue accepts and never answers: exit 0 at once, not after a timeout', async () => {
    // Each attempt would wait out UPSTREAM_TIMEOUT_MS (10 s).
    const { port, sockets, close } = await silentServer();
    try {
      const url = `http://127.0.0.1:${port}`;
      const app = start({ PRICE_SOURCE: 'coinbase', SENTIMENT_SOURCE: 'fear-greed', COINBASE_API_URL: url, FEAR_GREED_API_URL: url, INGEST_ON_STARTUP: 'true', INGEST_SCHEDULE_ENABLED: 'true' });
      await app.ready();
      await waitFor('both sources calling the venue', async () => sockets.length >= 2);
      const signalled = Date.now();
      app.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalled).toBeLessThan(9000); // one attempt's UPSTREAM_TIMEOUT_MS is 10 s
      expect(app.stderr).not.toContain('shutdown took longer');
      expect(sockets).toHaveLength(2); // no retry
    } finally {
      close();
    }
  }, 30_000);

  it('stalled clients do not hold the shutdown, a request in flight is still answered, a second signal changes nothing', async () => {
    let release!: () => void;
    upstream.mode = { kind: 'held', body: fixture, until: new Promise<void>((resolve) => (release = resolve)) };
    upstream.calls = 0;
    // SHUTDOWN_TIMEOUT_MS past the test's own timeout would hide a hang; this one turns it into exit 1.
    const app = start({ INGEST_ON_STARTUP: 'false', INGEST_SCHEDULE_ENABLED: 'false', SHUTDOWN_TIMEOUT_MS: '20000' });
    try {
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
      // Two signals arriving together (held while the process is stopped; two of one kind would
      // merge into one): whichever is handled second is only logged.
      app.kill('SIGSTOP');
      app.kill('SIGTERM');
      app.kill('SIGINT');
      app.kill('SIGCONT');
      // The shutdown aborts the held call: the refresh is answered with the reason.
      expect((await refresh).status).toBe(502);
      await Promise.all(stalled.map((s) => s.closed));
      expect(await app.exited).toEqual({ code: 0, signal: null });
      const messages = app.lines.map((l) => String(l.msg));
      expect(messages.filter((m) => /^SIG(TERM|INT): shutting down gracefully$/.test(m))).toHaveLength(1);
      expect(messages.filter((m) => /^SIG(TERM|INT): already shutting down$/.test(m))).toHaveLength(1);
    } finally {
      release();
    }
  }, 60_000);

  it('an uncaught exception: logged once at fatal with its stack, then the graceful shutdown (the request in flight answered, Redis quit), exit 1', async () => {
    let release!: () => void;
    upstream.mode = { kind: 'held', body: fixture, until: new Promise<void>((resolve) => (release = resolve)) };
    upstream.calls = 0;
    const app = start({ INGEST_ON_STARTUP: 'false', INGEST_SCHEDULE_ENABLED: 'false' }, undefined, CRASH_ON_SIGNAL);
    try {
      const base = await app.ready();
      const refresh = fetch(`${base}/refresh`, { method: 'POST', headers: { authorization: `Bearer ${TEST_REFRESH_TOKEN}` } });
      await waitFor('the refresh to reach the upstream', async () => upstream.calls >= 1);
      app.kill('SIGUSR2');
      // Without the policy Node prints the stack and exits at once: the refresh's connection is reset.
      expect((await refresh).status).toBe(502);
      expect(await app.exited).toEqual({ code: 1, signal: null });
      const fatal = app.lines.filter((l) => l.level === 60).map((l) => String(l.msg));
      expect(fatal).toEqual([expect.stringMatching(/^uncaught exception; shutting down gracefully, then exit 1\nTypeError: crash-on-signal: a bug in a callback\n +at /)]);
      expect(app.lines.map((l) => String(l.msg))).toContain('Redis connection closed');
      expect(app.stderr).toBe('');
    } finally {
      release();
    }
  }, 60_000);

  it('an unhandled rejection: the same shutdown (SHUTDOWN_DRAIN_MS first); a second one meanwhile is logged and starts nothing more', async () => {
    const app = start(
      { INGEST_ON_STARTUP: 'false', INGEST_SCHEDULE_ENABLED: 'false', HEALTH_INGEST_MAX_AGE_MS: '0', SHUTDOWN_DRAIN_MS: String(DRAIN_MS), CRASH_AS: 'reject' },
      undefined,
      CRASH_ON_SIGNAL,
    );
    const base = await app.ready();
    expect((await fetch(`${base}/health/ready`)).status).toBe(200);
    app.kill('SIGUSR2');
    await waitFor('readiness to turn red', async () => (await fetch(`${base}/health/ready`)).status === 503);
    app.kill('SIGUSR2');
    expect(await app.exited).toEqual({ code: 1, signal: null });
    const fatal = app.lines.filter((l) => l.level === 60).map((l) => String(l.msg));
    expect(fatal).toEqual([
      expect.stringMatching(/^unhandled promise rejection; shutting down gracefully, then exit 1\nTypeError: crash-on-signal/),
      expect.stringMatching(/^unhandled promise rejection; already shutting down\nTypeError: crash-on-signal/),
    ]);
    expect(app.lines.map((l) => String(l.msg))).toContain('Redis connection closed');
  }, 30_000);

  it('an uncaught exception while startup waits for Redis: exit 1, said in one line', async () => {
    const { port, sockets, close } = await silentServer();
    try {
      const app = start({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_STARTUP_WAIT_MS: '30000' }, undefined, CRASH_ON_SIGNAL);
      await waitFor('startup to reach Redis', async () => sockets.length > 0);
      app.kill('SIGUSR2');
      expect(await app.exited).toEqual({ code: 1, signal: null });
      expect(app.stderr).toBe('is-bitcoin-lit failed to start: uncaught exception: TypeError: crash-on-signal: a bug in a callback\n');
    } finally {
      close();
    }
  }, 30_000);

  it('a signal while startup waits for Redis: exit 0, said in one line', async () => {
    // A "Redis" that never answers: its first connection says startup is under way.
    const { port, sockets, close } = await silentServer();
    try {
      const app = start({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_STARTUP_WAIT_MS: '30000' });
      await waitFor('startup to reach Redis', async () => sockets.length > 0);
      app.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(app.stderr).toBe('is-bitcoin-lit: SIGTERM during startup; exiting\n');
    } finally {
      close();
    }
  }, 30_000);

  it('a signal while it is still loading (before Nest is imported): exit 0, not killed by the signal', async () => {
    // Loading Nest and the app takes a second or more; the handlers are in place before that.
    // The preload says when they are (a fixed wait lost the race on a loaded CI machine).
    const app = start({ REDIS_URL: 'redis://127.0.0.1:9' }, undefined, SIGNAL_HANDLERS_READY);
    await waitFor('the SIGTERM handler', async () => app.lines.some((l) => l.msg === 'test: SIGTERM handler in place'));
    app.kill('SIGTERM');
    expect(await app.exited).toEqual({ code: 0, signal: null });
    expect(app.stderr).toBe('is-bitcoin-lit: SIGTERM during startup; exiting\n');
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
