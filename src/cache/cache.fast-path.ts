import { Injectable, SetMetadata } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { MetricsService } from '../metrics/metrics.service.js';
import { CacheService } from './cache.service.js';

export const CACHE_FAST_PATH_METADATA = 'is-bitcoin-lit:cache-fast-path';

/**
 * Opts a cached GET handler into CacheFastPath. Only for public routes: a request answered by
 * the fast path never reaches Nest, so guards, pipes and other interceptors do not run for it.
 */
export const ServeFromMemory = () => SetMetadata(CACHE_FAST_PATH_METADATA, true);

/** URLs remembered (distinct query strings could otherwise grow the map without bound). */
const MAX_URLS = 1000;

/**
 * Answers a GET from the in-process cache copy, before Nest's middleware, router, guards and
 * interceptor pipeline (createApp calls `serve` from the first onRequest hook, after the
 * security headers and request id are set). Measured with `npm run bench`: with the Redis read
 * already gone (L1), that pipeline — request logging middleware above all — was the
 * remaining difference to a bare server. Such hits are counted in metrics but not logged.
 *
 * It knows a URL only after RedisCacheInterceptor has served it for a @ServeFromMemory()
 * handler (`learn`), and answers only while CacheService holds a fresh copy of that URL's
 * entry; everything else (misses, expired copies, other routes) goes through Nest as before.
 * The answer is the one the interceptor gives for a hit: the same JSON bytes, `X-Cache: HIT`
 * and `Age`.
 */
@Injectable()
export class CacheFastPath {
  private readonly keyOf = new Map<string, string>();

  constructor(
    private readonly cache: CacheService,
    private readonly metrics: MetricsService,
  ) {}

  /** Called by the interceptor: GET `url` is served from cache entry `key`. */
  learn(url: string, key: string): void {
    if (this.keyOf.get(url) === key) return;
    if (this.keyOf.size >= MAX_URLS) this.keyOf.clear();
    this.keyOf.set(url, key);
  }

  /** Sends the cached answer and returns true, or returns false to let Nest handle the request. */
  serve(request: FastifyRequest, reply: FastifyReply): boolean {
    const key = request.method === 'GET' ? this.keyOf.get(request.url) : undefined;
    const hit = key === undefined ? undefined : this.cache.peekJson(key);
    if (hit === undefined) return false;
    this.metrics.cache.inc({ result: 'hit' });
    void reply
      .header('X-Cache', 'HIT')
      .header('Age', String(Math.max(0, Math.floor((Date.now() - hit.storedAt) / 1000))))
      .type('application/json; charset=utf-8')
      .send(hit.body);
    return true;
  }
}
