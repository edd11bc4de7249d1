import { SetMetadata } from '@nestjs/common';

export const CACHE_KEY_METADATA = 'is-bitcoin-lit:cache-key';

/**
 * Names the cache entry a GET handler's response is stored under (built by RedisKeys.cache).
 * Without it the interceptor keys on the request URL.
 */
export const CacheKey = (name: string) => SetMetadata(CACHE_KEY_METADATA, name);
