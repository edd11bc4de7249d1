import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { CacheService } from '../cache/cache.service.js';
import { RetryLaterException } from '../common/errors.js';
import { Env } from '../config/env.validation.js';
import { IngestEvents, SourceIngestedEvent } from '../ingest/ingest.events.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { DAY_MS, HOUR_MS, SeriesDef } from '../series/series.catalog.js';
import { SeriesRepository } from '../series/series.repository.js';
import { MetricName } from '../sources/source.types.js';
import { Sample } from '../timeseries/timeseries.types.js';
import { verdictOf } from '../verdict/verdict.rule.js';
import { VerdictService } from '../verdict/verdict.service.js';
import { compositePrice, freshnessOf } from './composite-price.js';
import { Direction, HourlyAverageDto, SummaryResponseDto } from './dto/summary-response.dto.js';
import { SummaryEvents } from './summary.events.js';

/** A daily index's value stays in effect until the next one, for at most this long. */
export const CARRY_MS = 3 * DAY_MS;

export function direction(first: number, last: number): Direction {
  if (last > first) return 'rising';
  if (last < first) return 'falling';
  return 'flat';
}

/** Start of the summary window: the top of the hour SUMMARY_HOURS-1 hours before the anchor's hour. */
export function windowStart(anchor: number, hours: number): number {
  return Math.floor(anchor / HOUR_MS) * HOUR_MS - (hours - 1) * HOUR_MS;
}

/**
 * The level in effect during each hour from `from` to the hour holding `to` (both epoch ms,
 * `from` on the hour): the newest sample before the hour ends, if it is less than CARRY_MS
 * older than the hour. `samples` oldest first. Computed at query time, so the stored series
 * (and GET /series) keep only the source's own points.
 */
export function levelsInEffect(samples: Sample[], from: number, to: number): Sample[] {
  const hours: Sample[] = [];
  let i = 0;
  let current: Sample | null = null;
  for (let h = from; h <= to; h += HOUR_MS) {
    while (i < samples.length && samples[i].timestamp < h + HOUR_MS) current = samples[i++];
    if (current && h - current.timestamp < CARRY_MS) hours.push({ timestamp: h, value: current.value });
  }
  return hours;
}

/**
 * A daily index's direction: the value in effect in the window's last hour against the value
 * before it (the previous day's), while that value is at most two days old. `raw` oldest first;
 * `hours` its levels in effect (none: no direction).
 */
export function dailyTrend(raw: Sample[], hours: Sample[]): Sample[] {
  if (hours.length === 0) return [];
  const last = hours[hours.length - 1];
  const i = raw.findLastIndex((s) => s.timestamp < last.timestamp + HOUR_MS);
  // A day's value is published the next day (SentiCrypt v2: yesterday's): older than two days,
  // the index has stopped, and its last move must not keep the verdict lit or cold: flat.
  const current = last.timestamp - raw[i].timestamp < 2 * DAY_MS;
  return i > 0 && current ? [raw[i - 1], raw[i]] : [raw[i]];
}

function directionOf(values: (number | null)[]): Direction | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : direction(known[0], known[known.length - 1]);
}

/**
 * Joins the two hourly series on bucket time: an hour appears when either metric has a value
 * in it, the other is null there. Null when no hour has any value. Each direction compares the
 * last value with the first of its metric's `trend` (by default its hours; see SummaryService).
 */
export function buildSummary(
  price: Sample[],
  sentiment: Sample[],
  trend: { price?: Sample[]; sentiment?: Sample[] } = {},
): Pick<SummaryResponseDto, 'hourly_average_of_averages' | 'price_direction' | 'sentiment_direction'> | null {
  const rows = new Map<number, HourlyAverageDto>();
  const row = (t: number) => {
    let r = rows.get(t);
    if (!r) rows.set(t, (r = { price: null, sentiment: null, time: new Date(t).toISOString() }));
    return r;
  };
  for (const p of price) row(p.timestamp).price = p.value;
  for (const s of sentiment) row(s.timestamp).sentiment = s.value;
  if (rows.size === 0) return null;
  const hours = [...rows.entries()].sort(([a], [b]) => a - b).map(([, r]) => r);
  return {
    hourly_average_of_averages: hours,
    sentiment_direction: directionOf((trend.sentiment ?? sentiment).map((s) => s.value)),
    price_direction: directionOf((trend.price ?? price).map((s) => s.value)),
  };
}

/** How long a request's "no samples" answer is given again without computing. */
const NOTHING_HELD_MS = 1000;

/**
 * Hourly averages of price and sentiment (TS.RANGE … AGGREGATION avg 3600000; the level in
 * effect for a daily index) and their directions, with each metric's source and freshness.
 * Recomputed into the cache after every ingest run (subscribed to IngestEvents).
 */
@Injectable()
export class SummaryService implements OnModuleInit {
  private readonly logger = new Logger(SummaryService.name);
  private readonly hours: number;
  private readonly anchorMode: 'latest' | 'now';
  private readonly ttlSeconds: number;
  private readonly retryAfterSeconds: number;
  private readonly staleAfterMs: Record<MetricName, number>;
  private readonly outlierPct: number;
  /** The last summary refresh started or queued (refreshCache never rejects). */
  private refreshing: Promise<unknown> = Promise.resolve();
  /** A request's "no samples" answer, given again until `until` (see compute). */
  private nothing: { error: RetryLaterException; until: number } | undefined;
  /** The refresh queued behind the running one and not started yet, which later runs share. */
  private queued: Promise<SummaryResponseDto | null> | undefined;

  constructor(
    private readonly series: SeriesRepository,
    private readonly keys: RedisKeys,
    private readonly cache: CacheService,
    private readonly ingestEvents: IngestEvents,
    private readonly events: SummaryEvents,
    private readonly verdicts: VerdictService,
    config: ConfigService<Env, true>,
  ) {
    this.hours = config.get('SUMMARY_HOURS', { infer: true });
    const anchor = config.get('SUMMARY_ANCHOR', { infer: true });
    // The frozen v1 feed would have nothing in the last hours: anchor at its newest sample.
    const frozen = series.catalog.every((d) => d.source === 'senticrypt-v1');
    this.anchorMode = anchor === 'auto' ? (frozen ? 'latest' : 'now') : anchor;
    this.ttlSeconds = config.get('CACHE_TTL_SECONDS', { infer: true });
    this.retryAfterSeconds = Math.ceil(config.get('INGEST_INTERVAL_MS', { infer: true }) / 1000);
    this.staleAfterMs = {
      price: config.get('PRICE_STALE_AFTER_MS', { infer: true }),
      sentiment: config.get('SENTIMENT_STALE_AFTER_MS', { infer: true }),
    };
    this.outlierPct = config.get('PRICE_OUTLIER_PCT', { infer: true });
  }

  onModuleInit(): void {
    this.ingestEvents.on((event) => this.onIngested(event));
  }

  /**
   * The summary of now. `verdict_since` is read from Redis unless `recordVerdict` is set: then
   * the caller records the verdict, which gives its start (refreshCache; reading it first was a
   * round trip per refresh whose answer was thrown away).
   */
  async compute(recordVerdict = false): Promise<SummaryResponseDto> {
    const now = Date.now();
    // A request's computation that found nothing is repeated for a second without reading
    // Redis again: the route is not rate limited (hits cost nothing), so each request would
    // otherwise cost a computation while there is no data (a first start, an upstream outage).
    if (!recordVerdict && this.nothing && this.nothing.until > now) throw this.nothing.error;
    const venues = this.series.defs('price');
    const [sentimentDef] = this.series.defs('sentiment');
    // Anchored at now, the window does not depend on what is stored: it is read together with the
    // newest samples (one round trip per computation, not two).
    const [[venueLatest, sentimentLatest], nowWindow] = await Promise.all([
      Promise.all([Promise.all(venues.map((d) => this.series.latest(d))), this.series.latest(sentimentDef)]),
      this.anchorMode === 'now' ? this.window(venues, sentimentDef, now) : null,
    ]);
    const anchor = this.anchorMode === 'now' ? now : newest([...venueLatest, sentimentLatest]);
    if (anchor !== null) {
      const [venueHours, { hours: sentimentHours, trend: sentimentTrend }] = nowWindow ?? (await this.window(venues, sentimentDef, anchor));
      const price = compositePrice(
        venues.map((def, i) => ({ def, latest: venueLatest[i], hours: venueHours[i] })),
        now,
        this.staleAfterMs.price,
        this.outlierPct,
      );
      const summary = buildSummary(price.hours, sentimentHours, { price: price.trend, sentiment: sentimentTrend });
      if (summary) {
        const sentiment = freshnessOf(sentimentDef, sentimentLatest, now, this.staleAfterMs.sentiment);
        // The verdict follows from the directions (one rule); its start is the one recorded in Redis.
        const verdict = verdictOf(summary.price_direction, summary.sentiment_direction);
        const verdict_since = recordVerdict ? null : await this.verdicts.since(verdict);
        return { ...summary, as_of: new Date(anchor).toISOString(), metrics: { price: price.freshness, sentiment }, verdict, verdict_since };
      }
    }
    const error = new RetryLaterException(
      this.anchorMode === 'now' ? `No samples in the last ${this.hours} hour(s) yet` : 'No samples stored yet; the first ingest has not completed',
      this.retryAfterSeconds,
    );
    if (!recordVerdict) this.nothing = { error, until: now + NOTHING_HELD_MS };
    throw error;
  }

  /**
   * Recomputes the summary and stores it where the cache interceptor looks.
   * Returns it, or null when it could not be computed or was older than one already recorded.
   */
  async refreshCache(): Promise<SummaryResponseDto | null> {
    let summary: SummaryResponseDto;
    try {
      summary = await this.compute(true);
    } catch (err) {
      this.logger.warn(`could not compute the summary: ${(err as Error).message}`);
      return null;
    }
    try {
      // After an ingest run, the verdict is recorded (history, change, event) before it is cached.
      const { since, stale } = await this.verdicts.record(summary);
      if (stale) {
        // Another instance (or a later run) has recorded a newer summary and cached it: caching
        // or announcing this one would set every instance back to an older answer for a TTL.
        this.logger.log(`summary as of ${summary.as_of} not cached: a newer one is recorded`);
        return null;
      }
      summary = { ...summary, verdict_since: since };
    } catch (err) {
      this.logger.warn(`could not record the verdict: ${(err as Error).message}`);
      summary = { ...summary, verdict_since: await this.verdicts.since(summary.verdict).catch(() => null) };
    }
    try {
      if (!(await this.cache.setUnlessNewer(this.keys.cache(), summary, this.ttlSeconds, Date.parse(summary.as_of)))) {
        this.logger.log(`summary as of ${summary.as_of} not cached: a newer one is`);
        return null;
      }
    } catch (err) {
      this.logger.warn(`could not prime the summary cache: ${(err as Error).message}`);
    }
    return summary;
  }

  private async onIngested(cause: SourceIngestedEvent): Promise<void> {
    this.nothing = undefined; // there may be data now
    // One refresh at a time in this process: two sources finishing together must not leave the
    // older computation in the cache (each one reads the data as it is when its turn comes).
    // A run that finishes while a refresh is queued shares it: that refresh has not read
    // anything yet, so it sees this run's samples too. The venues polled on one tick then cost
    // two refreshes (the running one and the one they share), not one each.
    let refresh = this.queued;
    if (refresh === undefined) {
      const next = this.refreshing.then(() => {
        if (this.queued === next) this.queued = undefined; // started: later runs queue a new one
        return this.refreshCache();
      });
      this.queued = this.refreshing = refresh = next;
    }
    await this.events.emit({ summary: await refresh, cause });
  }

  /** The hours of the summary's window ending at `anchor`: each venue's, and the sentiment's with its trend. */
  private window(venues: readonly SeriesDef[], sentimentDef: SeriesDef, anchor: number) {
    const from = windowStart(anchor, this.hours);
    return Promise.all([Promise.all(venues.map((d) => this.hourly(d, from, anchor))), this.sentimentHourly(sentimentDef, from, anchor)]);
  }

  /** Hourly means of a per-poll metric over [from, to]. */
  private hourly(def: SeriesDef, from: number, to: number): Promise<Sample[]> {
    return this.series.range(def, { from, to, aggregation: { type: 'avg', bucketMs: HOUR_MS } });
  }

  /**
   * Sentiment's hours, and what its direction compares. Per poll (v1): the hourly means, both.
   * A daily index: the level in effect in each hour, and for the direction its value in effect
   * against the day before (dailyTrend): within a few hours the level in effect never changes
   * (or changes once, at midnight), so the hours alone made the direction `flat` nearly all day
   * and the verdict could never be lit or cold.
   */
  private async sentimentHourly(def: SeriesDef, from: number, to: number): Promise<{ hours: Sample[]; trend: Sample[] }> {
    if (def.cadence === 'tick') {
      const hours = await this.hourly(def, from, to);
      return { hours, trend: hours };
    }
    const raw = await this.series.range(def, { from: Math.max(0, from - CARRY_MS), to });
    const hours = levelsInEffect(raw, from, to);
    return { hours, trend: dailyTrend(raw, hours) };
  }
}

function newest(latest: (Sample | null)[]): number | null {
  const stamps = latest.flatMap((s) => (s ? [s.timestamp] : []));
  return stamps.length ? Math.max(...stamps) : null;
}
