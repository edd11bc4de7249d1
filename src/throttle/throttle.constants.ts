import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiExtension, ApiTooManyRequestsResponse } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { RATE_LIMITS_EXTENSION, RETRY_AFTER_HEADER } from '../common/api-responses.js';

export const SKIP_THROTTLE = 'is-bitcoin-lit:skip-throttle';
export const STRICT_THROTTLE = 'is-bitcoin-lit:strict-throttle';

/** No rate limit on this controller/handler (health probes, metrics scrapes). */
export const SkipThrottle = () => SetMetadata(SKIP_THROTTLE, true);

/** Puts a handler under the stricter `refresh` limit (THROTTLE_REFRESH_LIMIT) as well. */
export const StrictThrottle = () => SetMetadata(STRICT_THROTTLE, true);

/**
 * Documents a rate-limited operation (every route not under @SkipThrottle) in Swagger: its 429
 * and, through RATE_LIMITS_EXTENSION, the X-RateLimit-* headers of its answers; with
 * `default+refresh`, those of the @StrictThrottle limit too.
 */
export const ApiRateLimited = (limits: 'default' | 'default+refresh' = 'default') =>
  applyDecorators(
    ApiTooManyRequestsResponse({
      type: ErrorResponseDto,
      description:
        limits === 'default'
          ? 'More than THROTTLE_LIMIT requests from this client IP in the window'
          : 'More than THROTTLE_REFRESH_LIMIT (or THROTTLE_LIMIT) requests from this client IP in the window',
      headers: RETRY_AFTER_HEADER,
    }),
    ApiExtension(RATE_LIMITS_EXTENSION, limits === 'default' ? ['default'] : ['default', 'refresh']),
  );
