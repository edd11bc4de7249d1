import { ApiProperty } from '@nestjs/swagger';
import { ApiInteger, nullableEnum } from '../../common/api-properties.js';
import { VERDICTS, type Verdict } from '../../verdict/verdict.rule.js';

export const DIRECTIONS = ['rising', 'falling', 'flat'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export class HourlyAverageDto {
  /**
   * Mean BTC price (in the price metric's unit, USD) of the samples in this hour; null when the
   * price source has no sample in this hour.
   * @example 33812.57
   */
  price!: number | null;

  /**
   * Sentiment in this hour, on the sentiment source's scale (see `metrics.sentiment.unit`): the
   * mean of the samples in the hour for a per-poll feed, the level in effect during the hour for a
   * daily index. Null when there is none.
   * @example 0.21
   */
  sentiment!: number | null;

  /**
   * Start of the hour (UTC, ISO-8601).
   * @example "2021-07-07T15:00:00.000Z"
   */
  time!: string;
}

/** Where a metric comes from and how fresh it is. */
export class MetricFreshnessDto {
  /** The source id; `composite` for a price from several venues (see `venues`). @example "coinbase" */
  source!: string;
  /** Unit or scale of the values. @example "USD" */
  unit!: string;
  /**
   * `tick`: a new value on every poll, an hour is the mean of its samples. `daily`: one value per
   * UTC day (an index), an hour is the level in effect during it.
   * @example "tick"
   */
  cadence!: 'tick' | 'daily';
  /** Time of the metric's newest stored sample (UTC), or null when there is none. @example "2026-12-02T07:11:30.000Z" */
  latest_sample_time!: string | null;
  /**
   * True when the newest sample is older than PRICE_STALE_AFTER_MS / SENTIMENT_STALE_AFTER_MS
   * (or there is none) at the time the summary was computed.
   * @example false
   */
  stale!: boolean;
}

const LEFT_OUT_REASONS = ['stale', 'no_data', 'outlier'] as const;

/** One price venue of a composite price: its freshness, and what the composite made of it. */
export class PriceVenueDto extends MetricFreshnessDto {
  /** Hours of the window whose price includes this venue. @example 3 */
  @ApiInteger()
  hours_used!: number;
  /**
   * Why it is left out of some or all hours, or null: `stale` (newest sample older than
   * PRICE_STALE_AFTER_MS while another venue is fresh: left out of the whole window), `no_data`
   * (nothing stored, or nothing in the window), `outlier` (more than PRICE_OUTLIER_PCT from the
   * median of the other venues in `outlier_hours` hours).
   * @example null
   */
  @nullableEnum(LEFT_OUT_REASONS)
  left_out!: (typeof LEFT_OUT_REASONS)[number] | null;
  /** Hours it was left out of as an outlier. @example 0 */
  @ApiInteger()
  outlier_hours!: number;
}

/**
 * Price's source and freshness. With several venues (PRICE_SOURCE a list) `source` is
 * `composite`, `latest_sample_time` the newest of any venue, `stale` true only when no venue is
 * fresh, and `venues` / `disagreement_hours` say how the price was made. With one venue those two
 * fields are absent and it reads exactly as before.
 */
export class PriceFreshnessDto extends MetricFreshnessDto {
  /** Every configured venue, in PRICE_SOURCE order (composite only). */
  venues?: PriceVenueDto[];
  /**
   * Hours where the two venues left were more than PRICE_OUTLIER_PCT apart: nothing tells which
   * one is wrong, so both count (their mean) (composite only).
   * @example 0
   */
  @ApiInteger(true)
  disagreement_hours?: number;
}

export class SummaryMetricsDto {
  price!: PriceFreshnessDto;
  sentiment!: MetricFreshnessDto;
}

export class SummaryResponseDto {
  /** Hourly averages, oldest first; the last one may be a partial hour. An hour appears when either metric has a value in it. */
  hourly_average_of_averages!: HourlyAverageDto[];

  /**
   * Sentiment of the last hour compared with the first (hours with a value); for a daily index, its value in effect in the last hour compared with the day before's. Null when there is no sentiment in the window.
   * @example "rising"
   */
  @nullableEnum(DIRECTIONS)
  sentiment_direction!: Direction | null;

  /**
   * Price of the last hour compared with the first (hours with a value); for a composite, over the venues that have both hours. Null when there is no price in the window.
   * @example "falling"
   */
  @nullableEnum(DIRECTIONS)
  price_direction!: Direction | null;

  /** End of the window (UTC): the time the summary was computed, or the newest sample for the frozen v1 feed. @example "2026-12-02T07:12:00.000Z" */
  as_of!: string;

  /** Per metric: its source, unit, newest sample and whether it is stale. */
  metrics!: SummaryMetricsDto;

  /**
   * Is Bitcoin lit? The one rule: `price_direction` and `sentiment_direction` both `rising`:
   * `lit`; both `falling`: `cold`; any other pair (one `flat`, or opposite directions): `mixed`;
   * either direction null (no data for that metric in the window): `unknown`.
   * @example "lit"
   */
  @ApiProperty({ enum: VERDICTS })
  verdict!: Verdict;

  /**
   * Start of the current run of this verdict (UTC): the `as_of` of the first summary, evaluated
   * after an ingest run, that had it. Shared by every instance (kept in Redis). Null when this
   * verdict has not been recorded yet (before the first evaluation after an ingest, or when the
   * window moved on since the last one: the next ingest records it).
   * @example "2026-12-02T05:00:00.000Z"
   */
  verdict_since!: string | null;
}
