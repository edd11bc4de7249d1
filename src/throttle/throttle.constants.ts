import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { ThrottleVerdictInterceptor } from './throttle-verdict.interceptor.js';

export const SKIP_THROTTLE = 'is-bitcoin-lit:skip-throttle';
export const STRICT_THROTTLE = 'is-bitcoin-lit:strict-throttle';
export const COUNT_ALONGSIDE = 'is-bitcoin-lit:count-alongside';

/** No rate limit on this controller/handler (health probes, metrics scrapes). */
export const SkipThrottle = () => SetMetadata(SKIP_THROTTLE, true);

/** Puts a handler under the stricter `refresh` limit (THROTTLE_REFRESH_LIMIT) as well. */
export const StrictThrottle = () => SetMetadata(STRICT_THROTTLE, true);

/**
 * For read-only handlers whose work is a bounded read (GET /series…): while the client's last
 * count in this window left headroom, its request is counted in Redis alongside the handler
 * instead of before it (the Redis round trip overlaps the handler's own reads), and the answer is
 * held until the count is back: still a 429 when over the limit (ThrottleGuard).
 */
export const CountAlongside = () => applyDecorators(SetMetadata(COUNT_ALONGSIDE, true), UseInterceptors(ThrottleVerdictInterceptor));
