import { ApiProperty } from '@nestjs/swagger';
import { ApiInteger } from '../../common/api-properties.js';

export class CompactionRuleDto {
  /** @example "{is-bitcoin-lit:price:mean:30s}:sum:1h" */
  destKey!: string;
  /** One of AGGREGATIONS for the rules this service creates; a rule made by hand may report another aggregator of the server's. */
  @ApiProperty({ type: 'string', example: 'sum' })
  aggregation!: string;
  /** @example 3600000 */
  @ApiInteger()
  bucketMs!: number;
}

export class SeriesInfoDto {
  /** @example "is-bitcoin-lit:price:mean:30s" */
  key!: string;
  /** @example "price" */
  metric!: 'price' | 'sentiment';
  /** The source that feeds it. @example "coinbase" */
  source!: string;
  /** Unit or scale of its values. @example "USD" */
  unit!: string;
  /**
   * Labels; compactions carry `aggregation`, `bucket` and `complete_from` (epoch ms from which their buckets are complete).
   * @example { "metric": "price", "source": "senticrypt", "app": "is-bitcoin-lit" }
   */
  labels!: Record<string, string>;
  /** RETENTION in ms (0 = forever). @example 2592000000 */
  @ApiInteger()
  retentionMs!: number;
  /** @example "first" */
  duplicatePolicy!: string;
  /** Samples within retention. @example 2474 */
  @ApiInteger()
  totalSamples!: number;
  /** Epoch ms of the oldest sample (0 when empty). @example 1625592618000 */
  @ApiInteger()
  firstTimestamp!: number;
  /** Epoch ms of the newest sample (0 when empty). @example 1625679018000 */
  @ApiInteger()
  lastTimestamp!: number;
  /** @example "2021-07-06T17:30:18.000Z" */
  firstTime!: string | null;
  /** @example "2021-07-07T17:30:18.000Z" */
  lastTime!: string | null;
  /** The raw series a compaction is computed from; null for a raw series. @example null */
  sourceKey!: string | null;
  /** Compaction rules fed by this series. */
  rules!: CompactionRuleDto[];
}
