import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { bootApp } from './support/app.js';
import { AppProcess, builtApp } from './support/process.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { storedSamples } from './support/series.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { sleep, waitFor } from './support/wait.js';

const INTERVAL_MS = 1000;
// Renewed every third of it: a holder paused a second or two by a loaded machine keeps it.
const LEASE_MS = 4000;
// The feed grows with time: sorted, its first 1000 records are "yesterday's" payload.
const fixture = loadFixture().sort((a, b) => (a.timestamp as number) - (b.timestamp as number));
const EARLY = 1000;

describe('several instances share one Redis: one ingest per tick (e2e, 3 processes)', () => {
  const prefix = uniquePrefix('instances');
  const lockKey = `${prefix}:lock:ingest`;
  let redis: Redis;
  let upstream: FakeUpstream;
  let reader: NestFastifyApplication;
  let instances: AppProcess[] = [];

  const holderPid = async () => {
    const token = await redis.get(lockKey);
    return token === null ? null : Number(token.split(':').at(-3));
  };
  const stored = (metric: string) => storedSamples(reader, `${prefix}:${metric}:mean:30s`);
  const logs = () => instances.map((i) => `--- instance ${i.pid}\n${i.output}`).join('\n');

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    const main = await builtApp();
    upstream = await new FakeUpstream(fixture.slice(0, EARLY)).start();
    instances = [0, 1, 2].map(
      () =>
        new AppProcess(main, {
          PORT: '0',
          HOST: '127.0.0.1',
          REDIS_URL,
          REDIS_KEY_PREFIX: prefix,
          SENTIMENT_API_URL: upstream.url,
          SENTIMENT_API_TIMEOUT_MS: '60000',
          SENTIMENT_API_RETRIES: '0',
          INGEST_SCHEDULE_ENABLED: 'true',
          INGEST_ON_STARTUP: 'true',
          INGEST_INTERVAL_MS: String(INTERVAL_MS),
          INGEST_LOCK_TTL_MS: String(LEASE_MS),
          LOG_LEVEL: 'debug',
        }),
    );
    await Promise.all(instances.map((i) => i.ready()));
    reader = await bootApp({ REDIS_KEY_PREFIX: prefix }); // schedule off: only reads the series
  }, 120_000);

  afterAll(async () => {
    await Promise.all(instances.map((i) => i.stop()));
    await reader?.close();
    await upstream?.stop();
    await deleteKeys(redis, prefix);
    await redis?.quit();
  }, 30_000);

  it('makes one upstream call per tick between three instances, under a lease naming its holder', async () => {
    await waitFor('the first ingest', async () => (await stored('price')).length === EARLY);
    const calls0 = upstream.calls;
    const t0 = Date.now();
    await sleep(5 * INTERVAL_MS);
    const calls = upstream.calls - calls0;
    const ticks = Math.ceil((Date.now() - t0) / INTERVAL_MS);
    // Each instance's timer fires every tick; without the lease this would be ~3 per tick.
    expect({ calls, ok: calls >= 2 && calls <= ticks + 1, ticks }).toEqual({ calls, ok: true, ticks });
    expect(instances.every((i) => i.alive)).toBe(true);
    const token = await waitFor('a lease holder', () => redis.get(lockKey));
    expect(token).toMatch(/^.+:\d+:[0-9a-f]{6}:[0-9a-f]{12}$/);
    expect(instances.map((i) => i.pid)).toContain(await holderPid());
    expect((await stored('sentiment')).length).toBe(EARLY);
  }, 30_000);

  it('keeps the lease while a run lasts; when the holder is killed mid-run another takes over and no sample is lost', async () => {
    upstream.mode = { kind: 'hang' };
    const before = upstream.calls;
    await waitFor('a run stuck on the upstream', () => upstream.calls > before);
    const pid = await holderPid();
    const holder = instances.find((i) => i.pid === pid);
    expect(holder).toBeDefined();

    // The run outlasts the lease and several ticks: renewals keep the others off the upstream.
    await sleep(LEASE_MS + 2 * INTERVAL_MS);
    expect(upstream.calls).toBe(before + 1);
    expect(await holderPid()).toBe(pid);

    holder!.kill('SIGKILL');
    await holder!.exited;
    upstream.mode = { kind: 'json', body: fixture }; // meanwhile the feed has grown to the full day
    const survivors = instances.filter((i) => i !== holder).map((i) => i.pid);
    await waitFor(
      `a survivor to ingest the full day\n${logs()}`,
      async () => (await stored('price')).length === fixture.length && (await stored('sentiment')).length === fixture.length,
    );
    expect(upstream.calls).toBeGreaterThan(before + 1);
    expect(survivors).toContain(await waitFor('a new lease holder', () => holderPid()));

    const ms = (t: unknown) => Math.trunc((t as number) * 1000);
    expect(await stored('price')).toEqual(fixture.map((r) => ({ timestamp: ms(r.timestamp), value: Number(r.btc_price) })));
    expect(await stored('sentiment')).toEqual(fixture.map((r) => ({ timestamp: ms(r.timestamp), value: r.mean })));
  }, 60_000);
});
