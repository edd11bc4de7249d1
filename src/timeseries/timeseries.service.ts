import { Inject, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { DeferredTimeseriesBackend } from './deferred.backend.js';
import { TIMESERIES_BACKEND } from './timeseries.constants.js';
import {
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

export interface AddReport {
  stored: number;
  duplicates: number;
  rejected: number;
  /** Distinct server error texts of rejected samples (bounded, for the report). */
  errors: string[];
}

/** TS.MADD chunks sent before waiting for the first reply. */
const ADD_PIPELINE = 4;

/** What the rest of the app uses: the chosen backend plus chunking and counting. */
@Injectable()
export class TimeseriesService {
  private readonly chunkSize: number;

  constructor(
    @Inject(TIMESERIES_BACKEND) private readonly backend: TimeseriesBackend,
    config: ConfigService<Env, true>,
  ) {
    this.chunkSize = config.get('TIMESERIES_MADD_CHUNK', { infer: true });
  }

  get kind(): BackendKind {
    return this.backend.kind;
  }

  /** False only while a deferred `auto` backend has not probed Redis yet (degraded start). */
  get kindKnown(): boolean {
    return !(this.backend instanceof DeferredTimeseriesBackend) || this.backend.known;
  }

  /**
   * Probes a deferred backend whose kind is not known yet (readiness asks: a degraded start must
   * not wait for a data request, which a load balancer never sends to an unready instance).
   */
  async probeKind(): Promise<void> {
    if (this.backend instanceof DeferredTimeseriesBackend) await this.backend.probe();
  }

  ensureSeries(key: string, options: SeriesOptions): Promise<void> {
    return this.backend.ensureSeries(key, options);
  }

  /**
   * TS.MADD in chunks of TIMESERIES_MADD_CHUNK samples; counts every sample's outcome. Up to
   * ADD_PIPELINE chunks are in flight at once (measured: sequential chunks left Redis idle while
   * the next one was built and sent). One connection runs commands in the order sent, so the
   * chunks are applied in order, exactly as one after the other.
   */
  async add(key: string, samples: Sample[]): Promise<AddReport> {
    const report: AddReport = { stored: 0, duplicates: 0, rejected: 0, errors: [] };
    const count = (outcomes: AddOutcome[]) => {
      for (const o of outcomes) {
        if (o.status === 'stored') report.stored++;
        else if (o.status === 'duplicate') report.duplicates++;
        else {
          report.rejected++;
          if (report.errors.length < 5 && !report.errors.includes(o.reason)) report.errors.push(o.reason);
        }
      }
    };
    const inFlight: Promise<AddOutcome[]>[] = [];
    for (let i = 0; i < samples.length; i += this.chunkSize) {
      const chunk = this.backend.addMany(key, samples.slice(i, i + this.chunkSize));
      chunk.catch(() => undefined); // if an earlier chunk fails first, this one's failure is not unhandled
      inFlight.push(chunk);
      if (inFlight.length >= ADD_PIPELINE) count(await inFlight.shift()!);
    }
    for (const chunk of inFlight) count(await chunk);
    return report;
  }

  range(query: RangeQuery): Promise<Sample[]> {
    return this.backend.range(query);
  }

  /** `range` of each query, in order, in as few round trips as the backend allows. */
  rangeMany(queries: RangeQuery[]): Promise<Sample[][]> {
    return this.backend.rangeMany(queries);
  }

  latest(key: string): Promise<Sample | null> {
    return this.backend.latest(key);
  }

  info(key: string): Promise<SeriesInfo | null> {
    return this.backend.info(key);
  }

  ensureRule(source: string, rule: CompactionRule): Promise<EnsuredRule> {
    return this.backend.ensureRule(source, rule);
  }
}
