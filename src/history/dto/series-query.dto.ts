import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, Matches } from 'class-validator';
import { SOURCE_IDS } from '../../sources/source.types.js';
import { AGGREGATIONS, type Aggregation } from '../../timeseries/timeseries.types.js';
import { BUCKET_PATTERN, TIME_HINT, TIME_PATTERN } from '../history-query.js';

/** The window of a history query: from, to, bucket (GET /series/{metric}, /series/combined, /series/verdict). */
export class RangeQueryDto {
  /**
   * Start of the range (inclusive): ISO-8601 with a zone, a date, or epoch ms. Default: 24 h before `to`.
   * @example "2021-07-06T17:00:00Z"
   */
  @ApiPropertyOptional({ pattern: TIME_PATTERN.source })
  @IsOptional()
  @Matches(TIME_PATTERN, { message: `from must be ${TIME_HINT}` })
  from?: string;

  /**
   * End of the range (inclusive): ISO-8601 with a zone, a date, or epoch ms. Default: the metric's newest stored sample (either metric's for /series/combined; for the verdict, its newest evaluation), or `from` when that is later.
   * @example "2021-07-07T17:30:00Z"
   */
  @ApiPropertyOptional({ pattern: TIME_PATTERN.source })
  @IsOptional()
  @Matches(TIME_PATTERN, { message: `to must be ${TIME_HINT}` })
  to?: string;

  /**
   * Bucket size: a positive integer and a unit (ms, s, m, h, d). Buckets are epoch-aligned UTC and labelled by their start. Default 1h.
   * @example "1h"
   */
  @ApiPropertyOptional({ pattern: BUCKET_PATTERN.source, default: '1h' })
  @IsOptional()
  @Matches(BUCKET_PATTERN, { message: 'bucket must be a positive integer and a unit (ms, s, m, h, d), e.g. 30s, 5m, 1h, 1d' })
  bucket?: string;
}

/** GET /series/combined (and the base of GET /series/{metric}): the window and an aggregation. */
export class SeriesQueryDto extends RangeQueryDto {
  /**
   * Aggregation per bucket, as RedisTimeSeries names them (twa only with the RedisTimeSeries module). Default avg.
   * @example "avg"
   */
  @ApiPropertyOptional({ enum: AGGREGATIONS, example: 'avg', default: 'avg' })
  @IsOptional()
  @IsIn(AGGREGATIONS, { message: `aggregation must be one of: ${AGGREGATIONS.join(', ')}` })
  aggregation?: Aggregation;
}

/** GET /series/{metric}: the history query, and optionally one of the metric's sources. */
export class MetricSeriesQueryDto extends SeriesQueryDto {
  /**
   * One configured source of the metric (e.g. one price venue) instead of the composite price.
   * Default: the metric's series (for price from several venues, their composite).
   * @example "kraken"
   */
  @ApiPropertyOptional({ enum: SOURCE_IDS, example: 'kraken' })
  @IsOptional()
  @IsIn(SOURCE_IDS, { message: `source must be one of: ${SOURCE_IDS.join(', ')}` })
  source?: string;
}
