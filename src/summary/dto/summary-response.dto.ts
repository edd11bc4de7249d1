export type Direction = 'rising' | 'falling' | 'flat';

export class HourlyAverageDto {
  /**
   * Mean BTC price (USD) of the samples in this hour.
   * @example 33812.57
   */
  price!: number;

  /**
   * Mean sentiment score (-1..1) of the samples in this hour.
   * @example 0.21
   */
  sentiment!: number;

  /**
   * Start of the hour (UTC, ISO-8601).
   * @example "2021-07-07T15:00:00.000Z"
   */
  time!: string;
}

export class SummaryResponseDto {
  /** Hourly averages, oldest first; the last one may be a partial hour. */
  hourly_average_of_averages!: HourlyAverageDto[];

  /**
   * Sentiment of the last hour compared with the first.
   * @example "rising"
   */
  sentiment_direction!: Direction;

  /**
   * Price of the last hour compared with the first.
   * @example "falling"
   */
  price_direction!: Direction;
}

/** GET /is-bitcoin-lit takes no parameters; any given is rejected with its name. */
export class NoQueryDto {}
