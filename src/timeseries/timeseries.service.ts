import { Inject, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { TIMESERIES_BACKEND } from './timeseries.constants.js';
import {
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

  ensureSeries(key: string, options: SeriesOptions): Promise<void> {
    return this.backend.ensureSeries(key, options);
  }

  /** TS.MADD in chunks of TIMESERIES_MADD_CHUNK samples; counts every sample's outcome. */
  async add(key: string, samples: Sample[]): Promise<AddReport> {
    const report: AddReport = { stored: 0, duplicates: 0, rejected: 0, errors: [] };
    for (let i = 0; i < samples.length; i += this.chunkSize) {
      const outcomes = await this.backend.addMany(key, samples.slice(i, i + this.chunkSize));
      for (const o of outcomes) {
        if (o.status === 'stored') report.stored++;
        else if (o.status === 'duplicate') report.duplicates++;
        else {
          report.rejected++;
          if (report.errors.length < 5 && !report.errors.includes(o.reason)) report.errors.push(o.reason);
        }
      }
    }
    return report;
  }

  range(query: RangeQuery): Promise<Sample[]> {
    return this.backend.range(query);
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
