import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Env } from '../config/env.validation.js';
import { LeaseLockService } from '../lock/lease-lock.service.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { IngestService } from './ingest.service.js';

export const INGEST_TIMEOUT_NAME = 'ingest';

/** Shortest wait before trying the lease again (Redis expiry and our timers are ms-exact at best). */
const MIN_RETRY_MS = 10;

/**
 * Runs ingest once at startup and then every INGEST_INTERVAL_MS, each run scheduled only when
 * the previous one has finished (a timeout chain in the SchedulerRegistry), so runs never
 * overlap. INGEST_SCHEDULE_ENABLED=false turns the schedule off on this instance.
 *
 * Several instances sharing a Redis make one run per tick between them: a tick is the lease
 * `<prefix>:lock:ingest`. The instance that takes it runs (renewing the lease while the run
 * lasts) and then keeps it until INGEST_INTERVAL_MS after it took it, instead of releasing it:
 * released at once, an instance whose timer fires a moment later would fetch again in the same
 * tick. An instance that finds the lease taken tries again when it ends, so the next tick
 * starts on time whoever holds it, and a holder that dies is replaced within one lease
 * (INGEST_LOCK_TTL_MS) of its last renewal. POST /refresh is an operator's explicit request and
 * does not take the lease.
 */
@Injectable()
export class IngestScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(IngestScheduler.name);
  private readonly enabled: boolean;
  private readonly onStartup: boolean;
  private readonly intervalMs: number;
  private readonly leaseMs: number;
  private stopped = false;
  private current: Promise<void> | null = null;

  constructor(
    private readonly ingest: IngestService,
    private readonly registry: SchedulerRegistry,
    private readonly lock: LeaseLockService,
    private readonly keys: RedisKeys,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = config.get('INGEST_SCHEDULE_ENABLED', { infer: true });
    this.onStartup = config.get('INGEST_ON_STARTUP', { infer: true });
    this.intervalMs = config.get('INGEST_INTERVAL_MS', { infer: true });
    this.leaseMs = config.get('INGEST_LOCK_TTL_MS', { infer: true });
  }

  onApplicationBootstrap(): void {
    if (!this.enabled) this.logger.log('Scheduled ingest is off on this instance (INGEST_SCHEDULE_ENABLED=false)');
    else this.logger.log(`Scheduled ingest every ${this.intervalMs} ms under lease ${this.keys.lock('ingest')} (instance ${this.lock.instanceId})`);
    if (this.onStartup) this.tick();
    else this.scheduleNext(this.intervalMs);
  }

  /** Stop scheduling and let a run in progress (and its lease bookkeeping) finish before Redis is closed. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.registry.doesExist('timeout', INGEST_TIMEOUT_NAME)) this.registry.deleteTimeout(INGEST_TIMEOUT_NAME);
    await this.current;
    await this.ingest.inFlight?.catch(() => undefined);
  }

  private tick(): void {
    this.current = this.runUnderLease().then((nextInMs) => {
      this.current = null;
      this.scheduleNext(nextInMs);
    });
  }

  /** One tick: take the lease or learn when it ends; returns the ms until the next attempt. */
  private async runUnderLease(): Promise<number> {
    const key = this.keys.lock('ingest');
    let attempt;
    try {
      attempt = await this.lock.tryAcquire(key, this.leaseMs);
    } catch (err) {
      this.logger.warn(`ingest skipped: cannot take the lease ${key}: ${(err as Error).message}`);
      return this.intervalMs;
    }
    if (!attempt.lease) {
      this.logger.debug(`ingest lease held by another instance; next try in ${attempt.retryInMs ?? this.intervalMs} ms`);
      return Math.min(this.intervalMs, Math.max(MIN_RETRY_MS, attempt.retryInMs ?? this.intervalMs));
    }
    const lease = attempt.lease;
    this.logger.debug(`ingest lease taken: ${lease.token}`);
    const stopRenewing = this.lock.keepAlive(lease, this.leaseMs, (reason) =>
      this.logger.warn(`ingest lease lost during the run (${reason}); another instance may ingest too (harmless: duplicates are ignored)`),
    );
    try {
      await this.ingest.run();
    } catch {
      // IngestService has logged the reason; the next tick tries again.
    } finally {
      stopRenewing();
    }
    // Keep the lease to the end of this tick (see the class comment); past it, free it now.
    const rest = lease.acquiredAt + this.intervalMs - Date.now();
    try {
      await (rest > 0 ? this.lock.renew(lease, rest) : this.lock.release(lease));
    } catch (err) {
      this.logger.warn(`could not hand back the ingest lease (it expires by itself): ${(err as Error).message}`);
    }
    return this.intervalMs;
  }

  private scheduleNext(delayMs: number): void {
    if (!this.enabled || this.stopped) return;
    if (this.registry.doesExist('timeout', INGEST_TIMEOUT_NAME)) this.registry.deleteTimeout(INGEST_TIMEOUT_NAME);
    const timer = setTimeout(() => {
      this.registry.deleteTimeout(INGEST_TIMEOUT_NAME);
      this.tick();
    }, delayMs);
    timer.unref?.();
    this.registry.addTimeout(INGEST_TIMEOUT_NAME, timer);
  }
}
