import { jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Env } from '../config/env.validation.js';
import { AcquireResult, Lease, LeaseLockService } from '../lock/lease-lock.service.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { RedisClient } from '../redis/redis.types.js';
import { IngestScheduler } from './ingest.scheduler.js';
import { SentimentIngestService } from './sentiment-ingest.service.js';

const INTERVAL = 30_000;
const LEASE_TTL = 15_000;
const settings: Record<string, unknown> = {
  INGEST_SCHEDULE_ENABLED: true,
  INGEST_ON_STARTUP: false,
  INGEST_INTERVAL_MS: INTERVAL,
  INGEST_DAILY_INTERVAL_MS: 10 * INTERVAL,
  INGEST_LOCK_TTL_MS: LEASE_TTL,
  REDIS_KEY_PREFIX: 'p',
};
const config = { get: (k: string) => settings[k] } as unknown as ConfigService<Env, true>;

interface Options {
  /** Settings over `settings`. */
  env?: Record<string, unknown>;
  /** The Redis client's status when the scheduler is built ('ready', or 'connecting' in a degraded start). */
  status?: string;
}

/** Stopped after each test: a schedule left running ticks on in the worker, every 10 ms with a lease "held" for 0 ms. */
const started: IngestScheduler[] = [];

function setup(acquire: () => Promise<AcquireResult>, run: () => Promise<unknown> = async () => ({}), options: Options = {}) {
  const env = { get: (k: string) => ({ ...settings, ...options.env })[k] } as unknown as ConfigService<Env, true>;
  const lease: Lease = { key: 'p:lock:ingest', token: 't', acquiredAt: Date.now() };
  const lock = {
    instanceId: 'me',
    tryAcquire: jest.fn(acquire),
    renew: jest.fn(async () => true),
    release: jest.fn(async () => true),
    keepAlive: jest.fn(() => stop),
  };
  const stop = jest.fn();
  const v1 = { id: 'senticrypt-v1', metrics: [{ metric: 'price', unit: 'USD', cadence: 'tick' }] };
  const ingest = { run: jest.fn(run), inFlight: null, sources: [v1] };
  const redis = Object.assign(new EventEmitter(), { status: options.status ?? 'ready' });
  const scheduler = new IngestScheduler(
    ingest as unknown as SentimentIngestService,
    new SchedulerRegistry(),
    lock as unknown as LeaseLockService,
    new RedisKeys(env),
    redis as unknown as RedisClient,
    env,
  );
  scheduler.onApplicationBootstrap(); // INGEST_ON_STARTUP is off: the first tick is an interval away
  started.push(scheduler);
  const internals = scheduler as unknown as { runUnderLease(s: unknown): Promise<number>; tick(s: unknown): void };
  /** One tick's work, awaited (the next one is not scheduled). */
  const tick = () => internals.runUnderLease(scheduler.schedules[0]);
  /** A tick as the timer starts it (the next one is scheduled after it). */
  const start = () => internals.tick(scheduler.schedules[0]);
  return { lease, lock, ingest, stop, tick, start, scheduler, redis };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
const connectionClosed = () => Promise.reject(new Error('Connection is closed.'));

describe('IngestScheduler under the lease', () => {
  beforeAll(() => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
  });
  afterAll(() => jest.restoreAllMocks());
  afterEach(async () => {
    await Promise.all(started.splice(0).map((scheduler) => scheduler.beforeApplicationShutdown()));
  });

  it('gives a daily-only source its own slower schedule and lease', () => {
    const fng = { id: 'fear-greed', metrics: [{ metric: 'sentiment', unit: 'index 0..100', cadence: 'daily' }] };
    const ingest = { sources: [fng], run: jest.fn(), inFlight: null };
    const scheduler = new IngestScheduler(
      ingest as unknown as SentimentIngestService,
      new SchedulerRegistry(),
      {} as LeaseLockService,
      new RedisKeys(config),
      new EventEmitter() as unknown as RedisClient,
      config,
    );
    expect(scheduler.schedules).toEqual([
      { source: 'fear-greed', name: 'ingest:fear-greed', intervalMs: 10 * INTERVAL, leaseKey: 'p:lock:ingest:fear-greed', current: null, unreturned: null, missed: false, again: false, earlyAt: -Infinity },
    ]);
  });

  it('takes the lease, runs once while renewing it, then keeps it to the end of the tick', async () => {
    const s = setup(async () => ({ lease: s.lease }));
    expect(await s.tick()).toBe(INTERVAL);
    expect(s.lock.tryAcquire).toHaveBeenCalledWith('p:lock:ingest', LEASE_TTL);
    expect(s.ingest.run).toHaveBeenCalledTimes(1);
    expect(s.ingest.run).toHaveBeenCalledWith('senticrypt-v1');
    expect(s.lock.keepAlive).toHaveBeenCalledWith(s.lease, LEASE_TTL, expect.any(Function));
    expect(s.stop).toHaveBeenCalledTimes(1);
    expect(s.lock.release).not.toHaveBeenCalled();
    const [lease, rest] = s.lock.renew.mock.calls[0] as unknown as [Lease, number];
    expect(lease).toBe(s.lease);
    expect(rest).toBeGreaterThan(INTERVAL - 1000);
    expect(rest).toBeLessThanOrEqual(INTERVAL);
  });

  it('releases the lease when the run outlasted the tick, and after a failed run holds it all the same', async () => {
    const late = setup(async () => ({ lease: { ...late.lease, acquiredAt: Date.now() - INTERVAL - 1 } }));
    expect(await late.tick()).toBe(INTERVAL);
    expect(late.lock.release).toHaveBeenCalledTimes(1);
    expect(late.lock.renew).not.toHaveBeenCalled();

    const failing = setup(async () => ({ lease: failing.lease }), async () => Promise.reject(new Error('upstream down')));
    expect(await failing.tick()).toBe(INTERVAL);
    expect(failing.stop).toHaveBeenCalledTimes(1);
    expect(failing.lock.renew).toHaveBeenCalledTimes(1);
  });

  // With persistence, a lease left in Redis by a run that Redis's restart cut short survives
  // it: the next ticks found it held and waited up to a whole INGEST_LOCK_TTL_MS to catch up.
  it('frees a lease it could not hand back at the next tick, before taking it again; until Redis answers, keeps trying', async () => {
    // Runs that outlast their tick: each hands its lease back with a release.
    const s = setup(async () => ({ lease: { ...s.lease, acquiredAt: Date.now() - INTERVAL - 1 } }));
    const down = async () => Promise.reject(new Error('Connection is closed.'));
    s.lock.release.mockImplementationOnce(down);
    expect(await s.tick()).toBe(INTERVAL);
    expect(s.lock.release).toHaveBeenCalledTimes(1);

    s.lock.release.mockImplementationOnce(down);
    s.lock.tryAcquire.mockImplementationOnce(down);
    expect(await s.tick()).toBe(INTERVAL); // Redis still away: tried, kept for the next tick
    expect(s.lock.release).toHaveBeenCalledTimes(2);
    expect(s.ingest.run).toHaveBeenCalledTimes(1);

    expect(await s.tick()).toBe(INTERVAL);
    expect(s.lock.release).toHaveBeenCalledTimes(4); // the one left behind, then this run's own
    expect(s.lock.release.mock.invocationCallOrder[2]).toBeLessThan(s.lock.tryAcquire.mock.invocationCallOrder[2]);
    expect(s.ingest.run).toHaveBeenCalledTimes(2);

    expect(await s.tick()).toBe(INTERVAL); // nothing left behind: only this run's release
    expect(s.lock.release).toHaveBeenCalledTimes(5);
  });

  it('hands back a lease left behind at shutdown, so the next instance need not wait for its expiry', async () => {
    const s = setup(async () => ({ lease: { ...s.lease, acquiredAt: Date.now() - INTERVAL - 1 } }));
    s.lock.release.mockImplementationOnce(async () => Promise.reject(new Error('Connection is closed.')));
    expect(await s.tick()).toBe(INTERVAL);
    expect(s.lock.release).toHaveBeenCalledTimes(1);
    await s.scheduler.beforeApplicationShutdown();
    expect(s.lock.release).toHaveBeenCalledTimes(2);
    expect(s.lock.release.mock.calls[1]).toEqual([expect.objectContaining({ token: 't' })]);
    await s.scheduler.beforeApplicationShutdown(); // nothing left the second time
    expect(s.lock.release).toHaveBeenCalledTimes(2);
  });

  // Else the next tick came an interval after Redis was back (30 s by default), and if Redis
  // came back empty every instance stayed unready (no ingest recorded) until then.
  // Else the next tick came an interval after Redis was back (30 s by default): a tick skipped or
  // cut short meanwhile left the series behind, and a Redis back empty left every instance
  // unready (no ingest recorded) until then.
  it('ticks at once when Redis is back, at most once an interval (a Redis restarting in a loop); a Redis that kept the lease allows one fetch per tick', async () => {
    const s = setup(async () => ({ lease: s.lease }));
    try {
      expect(await s.tick()).toBe(INTERVAL);
      expect(s.ingest.run).toHaveBeenCalledTimes(1);
      s.lock.tryAcquire.mockImplementation(async () => ({ lease: null, retryInMs: 20_000 })); // kept to the tick's end
      s.redis.emit('ready');
      await settle();
      expect(s.lock.tryAcquire).toHaveBeenCalledTimes(2);
      expect(s.ingest.run).toHaveBeenCalledTimes(1);
      s.lock.tryAcquire.mockImplementation(async () => ({ lease: s.lease })); // came back empty
      s.redis.emit('ready'); // again within the interval: no early tick
      await settle();
      expect(s.lock.tryAcquire).toHaveBeenCalledTimes(2);
      s.scheduler.schedules[0].earlyAt -= INTERVAL; // an interval later
      s.redis.emit('ready');
      await settle();
      expect(s.ingest.run).toHaveBeenCalledTimes(2);
    } finally {
      await s.scheduler.beforeApplicationShutdown();
    }
  });

  it('ticks again right after the tick in progress when Redis comes back during it', async () => {
    let finish!: () => void;
    const s = setup(
      async () => ({ lease: s.lease }),
      () => new Promise<void>((resolve) => (finish = resolve)),
    );
    try {
      s.start();
      await settle();
      s.redis.emit('ready');
      await settle();
      expect(s.ingest.run).toHaveBeenCalledTimes(1); // still the first
      s.ingest.run.mockImplementation(async () => ({}));
      finish();
      await settle();
      expect(s.ingest.run).toHaveBeenCalledTimes(2);
    } finally {
      await s.scheduler.beforeApplicationShutdown();
    }
  });

  it('at the first connection of a degraded start, runs only what Redis made fail, even with the schedule off; with it off, not on reconnects', async () => {
    const s = setup(connectionClosed, undefined, { status: 'connecting', env: { INGEST_SCHEDULE_ENABLED: false } });
    try {
      expect(await s.tick()).toBe(INTERVAL); // the startup run: Redis not there yet
      s.lock.tryAcquire.mockImplementation(async () => ({ lease: s.lease }));
      s.redis.emit('ready');
      await settle();
      expect(s.ingest.run).toHaveBeenCalledTimes(1);
      s.redis.emit('ready'); // a reconnect: this instance schedules nothing
      await settle();
      expect(s.ingest.run).toHaveBeenCalledTimes(1);
    } finally {
      await s.scheduler.beforeApplicationShutdown();
    }

    const scheduled = setup(async () => ({ lease: scheduled.lease }), undefined, { status: 'connecting' });
    try {
      scheduled.redis.emit('ready'); // first connection, nothing failed: nothing to run early
      await settle();
      expect(scheduled.lock.tryAcquire).not.toHaveBeenCalled();
    } finally {
      await scheduled.scheduler.beforeApplicationShutdown();
    }
  });

  // Nothing it fetched was stored: kept to the tick's end, it held off the run that Redis's
  // return starts (the lease outlives a failover or a restart with persistence).
  it('frees, rather than keeps, the lease of a run that failed for Redis, also when it is handed back later', async () => {
    const s = setup(async () => ({ lease: s.lease }), connectionClosed);
    try {
      expect(await s.tick()).toBe(INTERVAL);
      expect(s.lock.release).toHaveBeenCalledWith(s.lease);
      expect(s.lock.renew).not.toHaveBeenCalled();
      s.lock.release.mockImplementationOnce(connectionClosed);
      expect(await s.tick()).toBe(INTERVAL);
      s.ingest.run.mockImplementation(async () => ({}));
      expect(await s.tick()).toBe(INTERVAL);
      expect(s.lock.release).toHaveBeenCalledTimes(3); // the one left behind, freed though its tick was not over
      expect(s.lock.renew).toHaveBeenCalledTimes(1); // this run's, kept to its tick's end
      // Once this interval's early tick is spent, nothing would follow a free: kept as any other.
      s.scheduler.schedules[0].earlyAt = Date.now();
      s.ingest.run.mockImplementation(connectionClosed);
      expect(await s.tick()).toBe(INTERVAL);
      expect(s.lock.release).toHaveBeenCalledTimes(3);
      expect(s.lock.renew).toHaveBeenCalledTimes(2);
    } finally {
      await s.scheduler.beforeApplicationShutdown();
    }
  });

  it('a run that failed for the upstream is not run again when Redis comes back (on reconnect only with the next tick)', async () => {
    const s = setup(async () => ({ lease: s.lease }), () => Promise.reject(new Error('upstream down')), { status: 'connecting' });
    try {
      expect(await s.tick()).toBe(INTERVAL);
      s.redis.emit('ready'); // a first connection: only what Redis made fail would run
      await settle();
      expect(s.ingest.run).toHaveBeenCalledTimes(1);
    } finally {
      await s.scheduler.beforeApplicationShutdown();
    }
  });

  it.each([
    [1234, 1234],
    [0, 10],
    [null, INTERVAL],
    [INTERVAL + 5000, INTERVAL],
  ])('skips the tick when the lease is held (ends in %p ms) and tries again after %p ms', async (retryInMs, next) => {
    const s = setup(async () => ({ lease: null, retryInMs }));
    expect(await s.tick()).toBe(next);
    expect(s.ingest.run).not.toHaveBeenCalled();
    expect(s.lock.keepAlive).not.toHaveBeenCalled();
  });

  it('skips the tick when Redis cannot be asked for the lease', async () => {
    const s = setup(async () => Promise.reject(new Error('Connection is closed.')));
    expect(await s.tick()).toBe(INTERVAL);
    expect(s.ingest.run).not.toHaveBeenCalled();
  });
});
