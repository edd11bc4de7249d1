import type { RedisClient } from '../redis/redis.types.js';
import { detectBackend } from './backend-probe.js';
import { NativeTimeseriesBackend } from './native.backend.js';
import { PortableTimeseriesBackend } from './portable.backend.js';
import type {
  AddOutcome,
  BackendKind,
  CompactionRule,
  EnsuredRule,
  RangeQuery,
  Sample,
  SeriesInfo,
  SeriesOptions,
  TimeseriesBackend,
} from './timeseries.types.js';

export function backendOf(kind: BackendKind, redis: RedisClient): TimeseriesBackend {
  return kind === 'native' ? new NativeTimeseriesBackend(redis) : new PortableTimeseriesBackend(redis);
}

/**
 * TIMESERIES_BACKEND=auto when the app started without Redis (REDIS_STARTUP_MODE=degraded):
 * the probe runs once Redis is connected, or on first use, or when readiness asks, and again on
 * the next call if Redis is still away (the call fails like any command would while Redis is
 * down). Until then the kind is unknown, which readiness reports.
 */
export class DeferredTimeseriesBackend implements TimeseriesBackend {
  private resolved: TimeseriesBackend | null = null;
  private probing: Promise<TimeseriesBackend> | null = null;

  constructor(
    private readonly redis: RedisClient,
    private readonly onResolved: (kind: BackendKind) => void = () => undefined,
  ) {}

  get known(): boolean {
    return this.resolved !== null;
  }

  get kind(): BackendKind {
    if (!this.resolved) throw new Error('time-series backend not known yet (Redis has not answered the probe)');
    return this.resolved.kind;
  }

  /** Probes now if the kind is not known yet (readiness, Redis back): rejects like any call while Redis is away. */
  async probe(): Promise<void> {
    await this.backend();
  }

  private backend(): Promise<TimeseriesBackend> {
    if (this.resolved) return Promise.resolve(this.resolved);
    this.probing ??= detectBackend(this.redis)
      .then((kind) => {
        this.resolved = backendOf(kind, this.redis);
        this.onResolved(kind);
        return this.resolved;
      })
      .finally(() => {
        this.probing = null;
      });
    return this.probing;
  }

  async ensureSeries(key: string, options: SeriesOptions): Promise<void> {
    return (await this.backend()).ensureSeries(key, options);
  }
  async ensureRule(source: string, rule: CompactionRule): Promise<EnsuredRule> {
    return (await this.backend()).ensureRule(source, rule);
  }
  async addMany(key: string, samples: Sample[]): Promise<AddOutcome[]> {
    return (await this.backend()).addMany(key, samples);
  }
  async range(query: RangeQuery): Promise<Sample[]> {
    return (await this.backend()).range(query);
  }
  async rangeMany(queries: RangeQuery[]): Promise<Sample[][]> {
    return (await this.backend()).rangeMany(queries);
  }
  async latest(key: string): Promise<Sample | null> {
    return (await this.backend()).latest(key);
  }
  async info(key: string): Promise<SeriesInfo | null> {
    return (await this.backend()).info(key);
  }
}
