export class SeriesPointDto {
  /**
   * Start of the bucket (UTC, ISO-8601).
   * @example "2021-07-07T15:00:00.000Z"
   */
  time!: string;

  /**
   * The bucket's aggregate.
   * @example 33812.57
   */
  value!: number;
}

export class CombinedPointDto {
  /**
   * Start of the bucket (UTC, ISO-8601).
   * @example "2021-07-07T15:00:00.000Z"
   */
  time!: string;

  /**
   * Price aggregate (USD), or null when the bucket has no price sample.
   * @example 33812.57
   */
  price!: number | null;

  /**
   * Sentiment aggregate, or null when the bucket has no sentiment sample.
   * @example 0.21
   */
  sentiment!: number | null;
}
