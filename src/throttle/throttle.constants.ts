import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiTooManyRequestsResponse } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { RETRY_AFTER_HEADER } from '../common/api-responses.js';

export const SKIP_THROTTLE = 'is-bitcoin-lit:skip-throttle';
export const STRICT_THROTTLE = 'is-bitcoin-lit:strict-throttle';

/** No rate limit on this controller/handler (health probes, metrics scrapes). */
export const SkipThrottle = () => SetMetadata(SKIP_THROTTLE, true);

/** Puts a handler under the stricter `refresh` limit (THROTTLE_REFRESH_LIMIT) as well. */
export const StrictThrottle = () => SetMetadata(STRICT_THROTTLE, true);

/** Documents the 429 of the default limit (every route not under @SkipThrottle) in Swagger. */
export const ApiRateLimited = () =>
  applyDecorators(
    ApiTooManyRequestsResponse({
      type: ErrorResponseDto,
      description: 'More than THROTTLE_LIMIT requests from this client IP in the window',
      headers: RETRY_AFTER_HEADER,
    }),
  );
