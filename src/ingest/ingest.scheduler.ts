import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Env } from '../config/env.validation.js';
import { type Lease, LeaseLockService } from '../lock/lease-lock.service.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { isRedisUnavailableError } from '../redis/redis-errors.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { RedisClient } from '../redis/redis.types.js';
import { SourceId } from '../sources/source.types.js';
import { SentimentIngestService } from './sentiment-ingest.service.js';

/** Shortest wait before trying the lease again (Redis expiry and our timers are ms-exact at best). */
const MIN_RETRY_MS = 10;

/** One source's schedule. */
export interface SourceSchedule {
  source: SourceId;
  /** Name of its timeout in the SchedulerRegistry. */
  name: string;
  intervalMs: number;
  leaseKey: string;
  current: Promise<void> | null;
  /**
   * This instance's lease that a tick could not hand back (Redis was away), handed back at the
   * next tick or at shutdown; `free`: its run failed for Redis, so free it rather than keep it
   * to the end of its tick (nothing it fetched was stored).
   */
  unreturned: { lease: Lease; free: boolean } | null;
  /** A tick was skipped or its run failed because Redis was away: run again once it is back. */
  missed: boolean;
  /** Redis came back during the current tick: tick again once it ends. */
  again: boolean;
  /** When this instance last ticked it early because Redis came back (at most once an interval). */
  earlyAt: number;
}

/**
 * Runs each source once at startup and then on its own schedule: every INGEST_INTERVAL_MS for a
 * source with a tick metric (prices), every INGEST_DAILY_INTERVAL_MS for one that serves only
 * daily indices. Each run is scheduled when the previous one of that source has finished (a
 * timeout chain in the SchedulerRegistry), so runs never overlap and a slow source never delays
 * another. INGEST_SCHEDULE_ENABLED=false turns the schedule off on this instance.
 *
 * Several instances sharing a Redis make one run per source per tick between them: a tick is
 * the source's lease (`<prefix>:lock:ingest:<source>`; `<prefix>:lock:ingest` for SentiCrypt
 * v1). The instance that takes it runs (renewing the lease while the run lasts) and then keeps it
 * until the interval after it took it, instead of releasing it: released at once, an instance
 * whose timer fires a moment later would fetch again in the same tick. An instance that finds the
 * lease taken tries again when it ends, so the next tick starts on time whoever holds it, and a
 * holder that dies is replaced within one lease (INGEST_LOCK_TTL_MS) of its last renewal.
 * POST /refresh is an operator's explicit request and does not take the lease.
 */
@Injectable()
export class IngestScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(IngestScheduler.name);
  private readonly enabled: boolean;
  private readonly onStartup: boolean;
  private readonly leaseMs: number;
  readonly schedules: SourceSchedule[];
  private stopped = false;

  constructor(
    private readonly ingest: SentimentIngestService,
    private readonly registry: SchedulerRegistry,
    private readonly lock: LeaseLockService,
    keys: RedisKeys,
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = config.get('INGEST_SCHEDULE_ENABLED', { infer: true });
    this.onStartup = config.get('INGEST_ON_STARTUP', { infer: true });
    this.leaseMs = config.get('INGEST_LOCK_TTL_MS', { infer: true });
    const tickMs = config.get('INGEST_INTERVAL_MS', { infer: true });
    const dailyMs = config.get('INGEST_DAILY_INTERVAL_MS', { infer: true });
    this.schedules = ingest.sources.map((p) => ({
      source: p.id,
      name: `ingest:${p.id}`,
      intervalMs: p.metrics.some((m) => m.cadence === 'tick') ? tickMs : dailyMs,
      leaseKey: keys.ingestLock(p.id),
      current: null,
      unreturned: null,
      missed: false,
      again: false,
      earlyAt: -Infinity,
    }));
  }

  onApplicationBootstrap(): void {
    // Redis back after an outage: every scheduled source ticks now rather than an interval later.
    // A tick skipped or cut short meanwhile left its series behind, and a Redis that came back
    // empty left every instance unready (no ingest recorded) until the next run. At most once an
    // interval per source and instance: a Redis restarting in a loop must not make every restart
    // a fetch. If Redis kept its keys, the lease each tick keeps to its end still allows one fetch
    // per tick. On the first connection (REDIS_STARTUP_MODE=degraded) only a startup run that
    // Redis made fail runs again, even with the schedule off on this instance.
    let connected = this.redis.status === 'ready';
    this.redis.on('ready', () => {
      const reconnected = connected;
      connected = true;
      for (const s of this.schedules) {
        if (!((reconnected && this.enabled) || s.missed) || !this.mayTickEarly(s)) continue;
        s.earlyAt = Date.now();
        this.tickSoon(s);
      }
    });
    for (const s of this.schedules) {
      if (!this.enabled) this.logger.log(`Scheduled ingest of ${s.source} is off on this instance (INGEST_SCHEDULE_ENABLED=false)`);
      else this.logger.log(`Scheduled ingest of ${s.source} every ${s.intervalMs} ms under lease ${s.leaseKey} (instance ${this.lock.instanceId})`);
      if (this.onStartup) this.tick(s);
      else this.scheduleNext(s, s.intervalMs);
    }
  }

  /**
   * Stop scheduling and wait for runs in progress (and their lease bookkeeping) before Redis is
   * closed: quick, as SourceHttpClient has aborted their upstream calls (onModuleDestroy).
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    for (const s of this.schedules) {
      if (this.registry.doesExist('timeout', s.name)) this.registry.deleteTimeout(s.name);
    }
    await Promise.all(this.schedules.flatMap((s) => (s.current ? [s.current] : [])));
    await this.ingest.inFlight;
    // A lease an outage left behind, handed back now: else the instance replacing this one waits for it to expire.
    await Promise.all(this.schedules.flatMap((s) => (s.unreturned ? [this.handBack(s, s.unreturned.lease, s.unreturned.free)] : [])));
  }

  private tick(s: SourceSchedule): void {
    s.current = this.runUnderLease(s).then((nextInMs) => {
      s.current = null;
      if (s.again) this.tickSoon(s);
      else this.scheduleNext(s, nextInMs);
    });
  }

  private mayTickEarly(s: SourceSchedule): boolean {
    return Date.now() - s.earlyAt >= s.intervalMs;
  }

  /** Ticks `s` now instead of at its next time, or once its tick in progress ends. */
  private tickSoon(s: SourceSchedule): void {
    s.again = s.current !== null;
    if (this.stopped || s.again) return;
    if (this.registry.doesExist('timeout', s.name)) this.registry.deleteTimeout(s.name);
    this.tick(s);
  }

  /** One tick of one source: take its lease or learn when it ends; returns the ms until the next attempt. */
  private async runUnderLease(s: SourceSchedule): Promise<number> {
    if (s.unreturned && (await this.handBack(s, s.unreturned.lease, s.unreturned.free)) === undefined) {
      // Left behind when Redis went away during a run (with persistence it survives a restart):
      // it kept every instance, this one too, from catching up until it expired, up to
      // INGEST_LOCK_TTL_MS later. Its tick is over, so it was freed (a token-checked delete).
      this.logger.log(`ingest lease of ${s.source} left behind by a Redis outage handed back`);
    }
    let attempt;
    try {
      attempt = await this.lock.tryAcquire(s.leaseKey, this.leaseMs);
    } catch (err) {
      s.missed = true;
      this.logger.warn(`ingest of ${s.source} skipped: cannot take the lease ${s.leaseKey}: ${(err as Error).message}`);
      return s.intervalMs;
    }
    s.missed = false;
    if (!attempt.lease) {
      this.logger.debug(`ingest lease of ${s.source} held by another instance; next try in ${attempt.retryInMs ?? s.intervalMs} ms`);
      return Math.min(s.intervalMs, Math.max(MIN_RETRY_MS, attempt.retryInMs ?? s.intervalMs));
    }
    const lease = attempt.lease;
    this.logger.debug(`ingest lease taken: ${lease.token}`);
    const stopRenewing = this.lock.keepAlive(lease, this.leaseMs, (reason) =>
      this.logger.warn(`ingest lease of ${s.source} lost during the run (${reason}); another instance may ingest too (harmless: duplicates are ignored)`),
    );
    let failedForRedis = false;
    try {
      await this.ingest.run(s.source);
    } catch (err) {
      // The ingest service has logged the reason; the next tick tries again, or Redis's return.
      failedForRedis = isRedisUnavailableError(err);
      if (failedForRedis) s.missed = true;
    } finally {
      stopRenewing();
    }
    // Nothing it fetched was stored: freed, the early tick Redis's return starts can run (kept
    // to the tick's end, it held that off). Once that is spent, kept as any other.
    const err = await this.handBack(s, lease, failedForRedis && this.mayTickEarly(s));
    if (err) this.logger.warn(`could not hand back the ingest lease (tried again at the next tick; else it expires by itself): ${err.message}`);
    return s.intervalMs;
  }

  /**
   * Keeps `lease` to the end of its tick (see the class comment), or frees it once the tick is
   * over or when `free` (its run stored nothing). While Redis cannot be told, the lease is
   * remembered (`unreturned`) and handed back at the next tick or at shutdown; returns why it
   * could not be.
   */
  private async handBack(s: SourceSchedule, lease: Lease, free: boolean): Promise<Error | undefined> {
    const rest = free ? 0 : lease.acquiredAt + s.intervalMs - Date.now();
    try {
      await (rest > 0 ? this.lock.renew(lease, rest) : this.lock.release(lease));
      s.unreturned = null;
      return undefined;
    } catch (err) {
      s.unreturned = { lease, free };
      return err as Error;
    }
  }

  private scheduleNext(s: SourceSchedule, delayMs: number): void {
    if (!this.enabled || this.stopped) return;
    if (this.registry.doesExist('timeout', s.name)) this.registry.deleteTimeout(s.name);
    const timer = setTimeout(() => {
      this.registry.deleteTimeout(s.name);
      this.tick(s);
    }, delayMs);
    timer.unref?.();
    this.registry.addTimeout(s.name, timer);
  }
}
