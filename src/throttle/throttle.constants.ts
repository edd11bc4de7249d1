import { SetMetadata } from '@nestjs/common';

export const SKIP_THROTTLE = 'is-bitcoin-lit:skip-throttle';
export const STRICT_THROTTLE = 'is-bitcoin-lit:strict-throttle';

/** No rate limit on this controller/handler (health probes, metrics scrapes). */
export const SkipThrottle = () => SetMetadata(SKIP_THROTTLE, true);

/** Puts a handler under the stricter `refresh` limit (THROTTLE_REFRESH_LIMIT) as well. */
export const StrictThrottle = () => SetMetadata(STRICT_THROTTLE, true);
