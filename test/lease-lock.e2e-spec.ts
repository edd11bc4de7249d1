import { Redis } from 'ioredis';
import { LeaseLockService } from '../src/lock/lease-lock.service.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { sleep, waitFor } from './support/wait.js';

describe('LeaseLockService (e2e, real Redis)', () => {
  const prefix = uniquePrefix('lease');
  let redis: Redis;
  let a: LeaseLockService;
  let b: LeaseLockService;
  let n = 0;
  const key = () => `${prefix}:lock:${++n}`;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    // Two services on one client stand for two instances: what tells them apart is the token.
    a = new LeaseLockService(redis);
    b = new LeaseLockService(redis);
  });
  afterAll(async () => {
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('gives the lease to one taker, stores its token with the TTL, and tells the others when it ends', async () => {
    const k = key();
    const first = await a.tryAcquire(k, 10_000);
    expect(first.lease).not.toBeNull();
    expect(first.lease!.token.startsWith(`${a.instanceId}:`)).toBe(true);
    expect(await redis.get(k)).toBe(first.lease!.token);
    const pttl = await redis.pttl(k);
    expect(pttl).toBeGreaterThan(5000); // 10 s, less the time taken since (a loaded machine's)
    expect(pttl).toBeLessThanOrEqual(10_000);

    const second = await b.tryAcquire(k, 10_000);
    expect(second.lease).toBeNull();
    expect(second).toMatchObject({ retryInMs: expect.any(Number) });
    expect((second as { retryInMs: number }).retryInMs).toBeLessThanOrEqual(10_000);
    // Even the same process cannot take it twice: every acquisition is a new token.
    expect((await a.tryAcquire(k, 10_000)).lease).toBeNull();
  });

  it('lets only the owner renew and release', async () => {
    const k = key();
    const { lease } = await a.tryAcquire(k, 10_000);
    const forged = { ...lease!, token: `${b.instanceId}:000000000000` };
    expect(await b.renew(forged, 60_000)).toBe(false);
    expect(await b.release(forged)).toBe(false);
    expect(await redis.get(k)).toBe(lease!.token);
    expect(await redis.pttl(k)).toBeLessThanOrEqual(10_000);

    expect(await a.renew(lease!, 60_000)).toBe(true);
    expect(await redis.pttl(k)).toBeGreaterThan(10_000);
    expect(await a.release(lease!)).toBe(true);
    expect(await redis.exists(k)).toBe(0);
    expect((await b.tryAcquire(k, 10_000)).lease).not.toBeNull();
  });

  it("does not let a holder whose lease expired touch the next holder's lease", async () => {
    const k = key();
    const { lease: old } = await a.tryAcquire(k, 10_000);
    await redis.pexpire(k, 1); // as if the holder stalled past its lease
    await sleep(20);
    const { lease: next } = await b.tryAcquire(k, 10_000);
    expect(next).not.toBeNull();
    expect(await a.renew(old!, 60_000)).toBe(false);
    expect(await a.release(old!)).toBe(false);
    expect(await redis.get(k)).toBe(next!.token);
  });

  it('keeps a lease alive past its TTL while asked to, and reports it lost when taken', async () => {
    const k = key();
    const counted = new LeaseLockService(redis);
    const renew = counted.renew.bind(counted);
    const renewals: Promise<boolean>[] = [];
    let renewed = 0;
    counted.renew = (lease, ttlMs) => {
      const renewal = renew(lease, ttlMs).then((ok) => {
        if (ok) renewed++;
        return ok;
      });
      renewals.push(renewal);
      return renewal;
    };
    // Renewed every second: only a stall of over 2 s could let it lapse between two renewals.
    const ttlMs = 3000;
    const { lease } = await counted.tryAcquire(k, ttlMs);
    const originalEnd = await redis.pexpiretime(k); // by the Redis clock, like the TTL itself
    const lost: string[] = [];
    const stop = counted.keepAlive(lease!, ttlMs, (reason) => lost.push(reason));
    // The original end has passed by Redis's own clock, and renewals (more than one) carried it.
    await waitFor('the original TTL over, by the Redis clock, after renewals', async () => renewed >= 2 && (await redisNow(redis)) > originalEnd, { timeoutMs: 10_000 });
    expect(await redis.get(k)).toBe(lease!.token);
    expect(await redis.pexpiretime(k)).toBeGreaterThan(originalEnd);
    expect(lost).toEqual([]);

    await redis.set(k, 'someone-else', 'PX', 10_000);
    await waitFor('the loss reported', () => lost.length > 0);
    stop();
    // Every renewal has settled: none that was still in flight reports it a second time.
    await Promise.all(renewals);
    expect(lost).toEqual(['taken by another holder or expired']);
    expect(await redis.get(k)).toBe('someone-else');
  });

  it('does not report a lease lost when a renewal that was in flight at stop finds it released', async () => {
    const k = key();
    const slow = new LeaseLockService(redis);
    const renew = slow.renew.bind(slow);
    // The first renewal is held at its start until the holder has stopped and released, so it is
    // in flight at stop and reaches Redis after the release, however loaded the machine is.
    const started = deferred();
    const gate = deferred();
    const renewals: Promise<boolean>[] = [];
    slow.renew = (lease, ttlMs) => {
      const renewal = (async () => {
        started.resolve();
        await gate.promise;
        return renew(lease, ttlMs);
      })();
      renewals.push(renewal);
      return renewal;
    };
    // A long lease (it cannot expire before the release below, however slow the machine), renewed
    // every 10 ms (keepAlive's TTL of 30 ms sets the pace).
    const { lease } = await slow.tryAcquire(k, 60_000);
    const lost: string[] = [];
    const stop = slow.keepAlive(lease!, 30, (reason) => lost.push(reason));
    await started.promise;
    stop();
    expect(await slow.release(lease!)).toBe(true);
    gate.resolve();
    // The renewal found the lease gone, and keepAlive's handler, attached before ours, has run.
    expect(await Promise.all(renewals)).toEqual([false]);
    expect(lost).toEqual([]);
  });
});

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** The Redis server's clock (TIME), in ms. */
async function redisNow(redis: Redis): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}
