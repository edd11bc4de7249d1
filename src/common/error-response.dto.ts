import { ApiProperty } from '@nestjs/swagger';
import { ApiInteger } from './api-properties.js';

/** The body of every error response. */
export class ErrorResponseDto {
  /** @example 503 */
  @ApiInteger()
  statusCode!: number;

  /** @example "Service Unavailable" */
  error!: string;

  /** What went wrong; a list for a refused request body or query (one line per problem). */
  @ApiProperty({ oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], example: 'No samples stored yet; the first ingest has not completed' })
  message!: string | string[];

  /**
   * The request id (also in the X-Request-Id response header and on every log line of the request).
   * @example "9f1c2d4e-0b7a-4c51-8e0e-3b2f6a1d7c90"
   */
  requestId?: string;

  /** Per-check results of a failed readiness probe. */
  details?: Record<string, unknown>;
}
