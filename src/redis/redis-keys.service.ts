import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { sameSlotKey } from './key-slot.js';

export type Metric = 'price' | 'sentiment';
export const METRICS: readonly Metric[] = ['price', 'sentiment'];

/**
 * Every Redis key name the service uses, built here and nowhere else, under REDIS_KEY_PREFIX.
 * Defaults match the original app (`is-bitcoin-lit:price:mean:30s`, `…:cache`).
 *
 * Redis Cluster: each of these keys is used alone by every command, so they may live on
 * different masters. Keys that one command, script, transaction or TS.CREATERULE must touch
 * together have to share a slot: build the second one with `sameSlot`.
 */
@Injectable()
export class RedisKeys {
  readonly prefix: string;

  constructor(config: ConfigService<Env, true>) {
    this.prefix = config.get('REDIS_KEY_PREFIX', { infer: true });
  }

  series(metric: Metric): string {
    return `${this.prefix}:${metric}:mean:30s`;
  }

  /**
   * Compaction of a metric's raw series, e.g. `{is-bitcoin-lit:price:mean:30s}:sum:1h`: the
   * raw key as hash tag keeps it in the raw series' cluster slot, which TS.CREATERULE and the
   * compaction writes need (both keys on one shard).
   */
  compaction(metric: Metric, aggregation: string, bucket: string): string {
    return sameSlotKey(this.series(metric), `${aggregation}:${bucket}`);
  }

  /** Cache entry `name` (the summary lives at the bare `<prefix>:cache`, as in the original). */
  cache(name?: string): string {
    return name ? `${this.prefix}:cache:${name}` : `${this.prefix}:cache`;
  }

  /** Pub/sub channel of live notifications (ingest events), shared by every instance. */
  events(): string {
    return `${this.prefix}:events`;
  }

  /**
   * A key that lives in the same cluster slot as `key` (e.g. the compaction of a series:
   * `sameSlot(series('price'), 'avg:1h')` → `{<prefix>:price:mean:30s}:avg:1h`).
   */
  sameSlot(key: string, suffix: string): string {
    return sameSlotKey(key, suffix);
  }

  /** Epoch ms of the last successful ingest by any instance (readiness reads it). */
  ingestLastSuccess(): string {
    return `${this.prefix}:ingest:last-success`;
  }

  /** Rate-limit counter of one client for one throttler. */
  throttle(name: string): string {
    return `${this.prefix}:throttle:${name}`;
  }

  /** Lease lock `name`, e.g. `<prefix>:lock:ingest` (held by one instance per ingest tick). */
  lock(name: string): string {
    return `${this.prefix}:lock:${name}`;
  }
}
