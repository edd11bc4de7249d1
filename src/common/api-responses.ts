import { ApiServiceUnavailableResponse, type OpenAPIObject } from '@nestjs/swagger';
import { ErrorResponseDto } from './error-response.dto.js';

/** The Retry-After header of a documented 429 or 503 (AllExceptionsFilter sends it on both). */
export const RETRY_AFTER_HEADER = { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } } };

/** A documented 503 in the API's error shape: every such answer (a Redis outage, a full queue) carries Retry-After. */
export const ApiUnavailable = (description: string) => ApiServiceUnavailableResponse({ type: ErrorResponseDto, description, headers: RETRY_AFTER_HEADER });

/**
 * The OpenAPI extension naming the rate limits an operation is under (`default`, `refresh`; set
 * by ApiRateLimited): documentResponseHeaders gives its answers their X-RateLimit-* headers.
 */
export const RATE_LIMITS_EXTENSION = 'x-rate-limits';

const REQUEST_ID = {
  description: "The request's id: the caller's X-Request-Id when it is 1-128 of `A-Za-z0-9._:-`, else a new one. Also in the access log and in error bodies (`requestId`).",
  schema: { type: 'string' },
};

function rateLimitHeaders(limit: string): Record<string, { description: string; schema: { type: string } }> {
  const suffix = limit === 'default' ? '' : `-${limit}`;
  const setting = limit === 'default' ? 'THROTTLE_LIMIT' : `THROTTLE_${limit.toUpperCase()}_LIMIT`;
  return {
    [`X-RateLimit-Limit${suffix}`]: { description: `Requests allowed per window (${setting}); on every answer the limit counted`, schema: { type: 'integer' } },
    [`X-RateLimit-Remaining${suffix}`]: { description: 'Requests left in the current window', schema: { type: 'integer' } },
    [`X-RateLimit-Reset${suffix}`]: { description: 'Seconds until the current window ends', schema: { type: 'integer' } },
  };
}

type Responses = Record<string, { headers?: Record<string, unknown> }>;

/**
 * Adds the headers that every answer, or every answer of a rate-limited operation, carries to
 * the built document (a decorator on each response would repeat them): X-Request-Id on every
 * response, and the X-RateLimit-* of each of an operation's limits on all of its responses
 * (optional there: an answer made before the limit was counted, e.g. to a malformed request, has
 * none; a 429 has those of the limits counted before the one that refused it).
 */
export function documentResponseHeaders(document: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(document.paths)) {
    for (const operation of Object.values(item) as Array<{ responses?: Responses; [RATE_LIMITS_EXTENSION]?: string[] }>) {
      if (typeof operation !== 'object' || operation === null || operation.responses === undefined) continue;
      const limits = operation[RATE_LIMITS_EXTENSION] ?? [];
      for (const response of Object.values(operation.responses)) {
        response.headers = { ...response.headers, ...Object.assign({}, ...limits.map(rateLimitHeaders)), 'X-Request-Id': REQUEST_ID };
      }
    }
  }
  return document;
}
