import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { CacheService } from '../cache/cache.service.js';
import { RetryLaterException } from '../common/errors.js';
import { Env } from '../config/env.validation.js';
import { HOUR_MS } from '../history/history-query.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { Sample } from '../timeseries/timeseries.types.js';
import { Direction, HourlyAverageDto, SummaryResponseDto } from './dto/summary-response.dto.js';


export function direction(first: number, last: number): Direction {
  if (last > first) return 'rising';
  if (last < first) return 'falling';
  return 'flat';
}

/** Start of the summary window: the top of the hour SUMMARY_HOURS-1 hours before the anchor's hour. */
export function windowStart(anchor: number, hours: number): number {
  return Math.floor(anchor / HOUR_MS) * HOUR_MS - (hours - 1) * HOUR_MS;
}

/** Joins the two hourly series on bucket time; an hour missing from either is left out. */
export function buildSummary(price: Sample[], sentiment: Sample[]): SummaryResponseDto | null {
  const sentimentAt = new Map(sentiment.map((s) => [s.timestamp, s.value]));
  const hours: HourlyAverageDto[] = [];
  for (const p of price) {
    const s = sentimentAt.get(p.timestamp);
    if (s !== undefined) hours.push({ price: p.value, sentiment: s, time: new Date(p.timestamp).toISOString() });
  }
  if (hours.length === 0) return null;
  const first = hours[0];
  const last = hours[hours.length - 1];
  return {
    hourly_average_of_averages: hours,
    sentiment_direction: direction(first.sentiment, last.sentiment),
    price_direction: direction(first.price, last.price),
  };
}

/** Hourly averages of price and sentiment (TS.RANGE … AGGREGATION avg 3600000) and their directions. */
@Injectable()
export class SummaryService {
  private readonly logger = new Logger(SummaryService.name);
  private readonly hours: number;
  private readonly anchorMode: 'latest' | 'now';
  private readonly ttlSeconds: number;
  private readonly retryAfterSeconds: number;

  constructor(
    private readonly timeseries: TimeseriesService,
    private readonly keys: RedisKeys,
    private readonly cache: CacheService,
    config: ConfigService<Env, true>,
  ) {
    this.hours = config.get('SUMMARY_HOURS', { infer: true });
    this.anchorMode = config.get('SUMMARY_ANCHOR', { infer: true });
    this.ttlSeconds = config.get('CACHE_TTL_SECONDS', { infer: true });
    this.retryAfterSeconds = Math.ceil(config.get('INGEST_INTERVAL_MS', { infer: true }) / 1000);
  }

  async compute(): Promise<SummaryResponseDto> {
    const anchor = await this.anchor();
    if (anchor !== null) {
      const from = windowStart(anchor, this.hours);
      const aggregation = { type: 'avg' as const, bucketMs: HOUR_MS };
      const [price, sentiment] = await Promise.all([
        this.timeseries.range({ key: this.keys.series('price'), from, to: anchor, aggregation }),
        this.timeseries.range({ key: this.keys.series('sentiment'), from, to: anchor, aggregation }),
      ]);
      const summary = buildSummary(price, sentiment);
      if (summary) return summary;
    }
    throw new RetryLaterException(
      this.anchorMode === 'now'
        ? `No samples in the last ${this.hours} hour(s) yet`
        : 'No samples stored yet; the first ingest has not completed',
      this.retryAfterSeconds,
    );
  }

  /**
   * Recomputes the summary and stores it where the cache interceptor looks (after ingest).
   * Returns it (for the ingest notification), or null when it could not be computed.
   */
  async refreshCache(): Promise<SummaryResponseDto | null> {
    let summary: SummaryResponseDto;
    try {
      summary = await this.compute();
    } catch (err) {
      this.logger.warn(`could not compute the summary: ${(err as Error).message}`);
      return null;
    }
    try {
      await this.cache.set(this.keys.cache(), summary, this.ttlSeconds);
    } catch (err) {
      this.logger.warn(`could not prime the summary cache: ${(err as Error).message}`);
    }
    return summary;
  }

  /** The window's end: the newest stored sample (default; the v1 feed is frozen) or now. */
  private async anchor(): Promise<number | null> {
    if (this.anchorMode === 'now') return Date.now();
    const latest = await Promise.all([
      this.timeseries.latest(this.keys.series('price')),
      this.timeseries.latest(this.keys.series('sentiment')),
    ]);
    const stamps = latest.filter((s): s is Sample => s !== null).map((s) => s.timestamp);
    return stamps.length ? Math.max(...stamps) : null;
  }
}
