/** The body of every error response. */
export class ErrorResponseDto {
  /** @example 503 */
  statusCode!: number;

  /** @example "Service Unavailable" */
  error!: string;

  /** @example "No samples stored yet; the first ingest has not completed" */
  message!: string | string[];
}
