import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Env } from '../config/env.validation.js';
import { IngestService } from './ingest.service.js';

export const INGEST_TIMEOUT_NAME = 'ingest';

/**
 * Runs ingest once at startup and then every INGEST_INTERVAL_MS, each run scheduled only when
 * the previous one has finished (a timeout chain in the SchedulerRegistry), so runs never
 * overlap. INGEST_SCHEDULE_ENABLED=false turns the schedule off on this instance.
 */
@Injectable()
export class IngestScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(IngestScheduler.name);
  private readonly enabled: boolean;
  private readonly onStartup: boolean;
  private readonly intervalMs: number;
  private stopped = false;

  constructor(
    private readonly ingest: IngestService,
    private readonly registry: SchedulerRegistry,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = config.get('INGEST_SCHEDULE_ENABLED', { infer: true });
    this.onStartup = config.get('INGEST_ON_STARTUP', { infer: true });
    this.intervalMs = config.get('INGEST_INTERVAL_MS', { infer: true });
  }

  onApplicationBootstrap(): void {
    if (!this.enabled) this.logger.log('Scheduled ingest is off on this instance (INGEST_SCHEDULE_ENABLED=false)');
    if (this.onStartup) void this.tick();
    else this.scheduleNext();
  }

  /** Stop scheduling and let a run in progress finish before Redis is closed. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.registry.doesExist('timeout', INGEST_TIMEOUT_NAME)) this.registry.deleteTimeout(INGEST_TIMEOUT_NAME);
    await this.ingest.inFlight?.catch(() => undefined);
  }

  private async tick(): Promise<void> {
    try {
      await this.ingest.run();
    } catch {
      // IngestService has logged the reason; the next tick tries again.
    } finally {
      this.scheduleNext();
    }
  }

  private scheduleNext(): void {
    if (!this.enabled || this.stopped) return;
    if (this.registry.doesExist('timeout', INGEST_TIMEOUT_NAME)) this.registry.deleteTimeout(INGEST_TIMEOUT_NAME);
    const timer = setTimeout(() => {
      this.registry.deleteTimeout(INGEST_TIMEOUT_NAME);
      void this.tick();
    }, this.intervalMs);
    timer.unref?.();
    this.registry.addTimeout(INGEST_TIMEOUT_NAME, timer);
  }
}
