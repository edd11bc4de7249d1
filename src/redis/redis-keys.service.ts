import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';

export type Metric = 'price' | 'sentiment';
export const METRICS: readonly Metric[] = ['price', 'sentiment'];

/**
 * Every Redis key name the service uses, built here and nowhere else, under REDIS_KEY_PREFIX.
 * Defaults match the original app (`is-bitcoin-lit:price:mean:30s`, `…:cache`).
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

  /** Cache entry `name` (the summary lives at the bare `<prefix>:cache`, as in the original). */
  cache(name?: string): string {
    return name ? `${this.prefix}:cache:${name}` : `${this.prefix}:cache`;
  }

  /** Lease lock `name`, e.g. `<prefix>:lock:ingest` (held by one instance per ingest tick). */
  lock(name: string): string {
    return `${this.prefix}:lock:${name}`;
  }
}
