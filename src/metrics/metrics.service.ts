import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { TalliedHistogram } from './tallied-histogram.js';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisClient } from '../redis/redis.types.js';

export const INGEST_OUTCOMES = ['success', 'skipped', 'upstream_error', 'payload_error', 'redis_error', 'error'] as const;
export type IngestOutcome = (typeof INGEST_OUTCOMES)[number];
const CACHE_RESULTS = ['hit', 'miss', 'stale'] as const;
export type CacheResult = (typeof CACHE_RESULTS)[number];

/**
 * Sets each of `counter`'s label sets to 0: a series that appears with its first increment
 * hides that increment from rate() and increase(), so an alert on the first failure of a kind
 * never fired.
 */
export function countFromZero<T extends string>(counter: Counter<T>, labelSets: ReadonlyArray<Partial<Record<T, string>>>): void {
  for (const labels of labelSets) counter.inc(labels, 0);
}

/**
 * Prometheus metrics of this process. Its own Registry (not prom-client's global one), so
 * several apps in one process (the e2e tests) do not collide.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  readonly registry = new Registry();

  readonly httpDuration = new TalliedHistogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly ingestRuns = new Counter({
    name: 'ingest_runs_total',
    help: 'Ingest runs (one per source run) by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly sourceRuns = new Counter({
    name: 'source_runs_total',
    help: 'Ingest runs of each source by outcome (success, skipped: the upstream asked to wait, upstream_error, payload_error, redis_error, error)',
    labelNames: ['source', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly sourceLastSuccess = new Gauge({
    name: 'source_last_success_timestamp_seconds',
    help: 'Unix time of the last successful run of each source: at startup the last one stored by any instance (0 = none), then this process\'s',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly samples = new Counter({
    name: 'ingest_samples_total',
    help: 'Samples sent to Redis by source, series (its metric) and outcome (stored, duplicate, rejected)',
    labelNames: ['source', 'series', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly invalidRecords = new Counter({
    name: 'ingest_invalid_records_total',
    help: 'Upstream records that failed validation and were skipped, by source',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly upstreamDuration = new Histogram({
    name: 'upstream_request_duration_seconds',
    help: 'Duration of each upstream call (one per attempt) by source and outcome',
    labelNames: ['source', 'outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  /**
   * Hits answered by CacheFastPath, added to cache_requests_total when it is read (see
   * TalliedHistogram). Nothing here resets metrics; a reset would leave these to the next read.
   */
  private fastHits = 0;

  readonly cache = new Counter({
    name: 'cache_requests_total',
    help: 'Cached GET responses by result: hit, miss (computed), stale (last good value served while Redis failed)',
    labelNames: ['result'] as const,
    registers: [this.registry],
    collect: () => {
      if (this.fastHits === 0) return;
      this.cache.inc({ result: 'hit' }, this.fastHits);
      this.fastHits = 0;
    },
  });

  /** Counts a cache hit at the cost of an increment (prom-client's inc hashes its labels each time). */
  countFastHit(): void {
    this.fastHits++;
  }

  readonly redisErrors = new Counter({
    name: 'redis_errors_total',
    help: 'Redis connection errors (client error events) and commands that failed because Redis was unavailable',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly lastIngestSuccess = new Gauge({
    name: 'ingest_last_success_timestamp_seconds',
    help: 'Unix time of the last successful ingest run in this process (0 = none yet)',
    registers: [this.registry],
  });

  private readonly enabled: boolean;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = config.get('METRICS_ENABLED', { infer: true });
    countFromZero(this.ingestRuns, INGEST_OUTCOMES.map((outcome) => ({ outcome })));
    countFromZero(this.cache, CACHE_RESULTS.map((result) => ({ result })));
    countFromZero(this.redisErrors, [{ kind: 'connection' }, { kind: 'command' }]);
  }

  onModuleInit(): void {
    // The process collectors (event loop lag histogram, GC observer…) cost something all the
    // time; with nothing to serve them (METRICS_ENABLED=false) they are not started. The
    // counters above stay: an increment is a few ns, and the code that counts need not ask.
    if (this.enabled) collectDefaultMetrics({ register: this.registry });
    this.redis.on('error', () => this.redisErrors.inc({ kind: 'connection' }));
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
