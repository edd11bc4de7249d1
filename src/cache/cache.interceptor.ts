import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { from, lastValueFrom, Observable } from 'rxjs';
import { Env } from '../config/env.validation.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { CACHE_KEY_METADATA } from './cache.constants.js';
import { CacheResult, MetricsService } from '../metrics/metrics.service.js';
import { isRedisUnavailableError } from '../redis/redis-errors.js';
import { CACHE_FAST_PATH_METADATA, CacheFastPath } from './cache.fast-path.js';
import { CacheService } from './cache.service.js';
import { LogSampler } from '../common/log-sampler.js';

/**
 * Redis-backed response cache for GET handlers (shared by every instance), with an
 * `X-Cache: HIT|MISS|STALE` header and single-flight: concurrent misses for one key in this
 * process run the handler once. Nest's stock CacheInterceptor does neither, and its Redis store
 * would bring a second Redis client; this one uses the app's client and key builder.
 *
 * Stale is better than nothing: the newest value of each key this process has seen (read,
 * written, or refreshed for the fast path: CacheService.lastGood) is served with
 * `X-Cache: STALE` while Redis is unavailable, instead of a 503.
 * `Age` (seconds since the value was computed) is sent on HIT and STALE.
 */
@Injectable()
export class CacheInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Cache');
  private readonly ttlSeconds: number;
  private readonly inflight = new Map<string, Promise<unknown>>();
  // While Redis is down every request would log these: one line per 10 s each.
  private readonly readFailedLog = new LogSampler();
  private readonly staleLog = new LogSampler();

  constructor(
    private readonly cache: CacheService,
    private readonly keys: RedisKeys,
    private readonly reflector: Reflector,
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
    private readonly fastPath: CacheFastPath,
  ) {
    this.ttlSeconds = config.get('CACHE_TTL_SECONDS', { infer: true });
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const adapter = this.adapterHost.httpAdapter;
    const request = http.getRequest();
    // HEAD runs the GET handler (Fastify drops the body): answer it from the cache too.
    const method = adapter.getRequestMethod(request);
    if (method !== 'GET' && method !== 'HEAD') return next.handle();
    const name = this.reflector.get<string | undefined>(CACHE_KEY_METADATA, context.getHandler());
    // A named entry does not depend on the query, so a parameter can only be invalid input: let
    // the handler's validation answer it (a cache hit here would skip validation). An empty
    // query (`?`, `?&`) is no parameter: served from the cache like the bare path, not computed.
    if (name !== undefined && Object.keys((request as FastifyRequest).query ?? {}).length > 0) return next.handle();
    const key = this.keys.cache(name ?? `url:${adapter.getRequestUrl(request)}`);
    const response = http.getResponse();
    // Lets CacheFastPath answer later hits of this URL from memory, before Nest (opt-in per handler).
    // Not for spellings with an empty query (`?&&`): a client cycling them would evict the real URLs from its table.
    const url = adapter.getRequestUrl(request);
    if (!(name !== undefined && url.includes('?')) && this.reflector.get<boolean | undefined>(CACHE_FAST_PATH_METADATA, context.getHandler())) {
      this.fastPath.learn(url, key, (request as FastifyRequest).routeOptions?.url ?? 'unmatched');
    }
    const mark = (result: CacheResult, storedAt?: number) => {
      adapter.setHeader(response, 'X-Cache', result.toUpperCase());
      if (storedAt !== undefined) adapter.setHeader(response, 'Age', String(Math.max(0, Math.floor((Date.now() - storedAt) / 1000))));
      this.metrics.cache.inc({ result });
    };
    return from(this.serve(key, next, mark));
  }

  private async serve(key: string, next: CallHandler, mark: (result: CacheResult, storedAt?: number) => void): Promise<unknown> {
    let readError: unknown;
    const cached = await this.cache.get(key).catch((err: Error) => {
      const held = this.readFailedLog.take();
      if (held !== undefined) this.logger.warn(`cache read failed for ${key}: ${err.message}${held}`);
      readError = err;
      return null;
    });
    if (cached) {
      mark('hit', cached.storedAt);
      return cached.value;
    }
    // Redis did not answer the read (down, or a command timeout already spent): computing needs
    // it too, so answer now (stale or 503) instead of paying another timeout on the handler.
    if (isRedisUnavailableError(readError)) return this.stale(key, readError, mark);
    try {
      const value = await this.compute(key, next);
      mark('miss');
      return value;
    } catch (err) {
      if (!isRedisUnavailableError(err)) throw err;
      return this.stale(key, err, mark);
    }
  }

  /** The last good value of `key` while Redis is unavailable, or `err` again (a 503) without one. */
  private stale(key: string, err: unknown, mark: (result: CacheResult, storedAt?: number) => void): unknown {
    const stale = this.cache.lastGood(key);
    if (!stale) throw err;
    const held = this.staleLog.take();
    if (held !== undefined) this.logger.warn(`serving the last good value of ${key} (Redis unavailable: ${(err as Error).message})${held}`);
    mark('stale', stale.storedAt);
    return stale.value;
  }

  /**
   * Runs the handler once for concurrent misses of one key and stores the result unless the key
   * was written meanwhile (see CacheService.fill). A refused write (Redis out of memory) still
   * holds the result in this process for CACHE_L1_TTL_MS: every request recomputed it otherwise.
   */
  private async compute(key: string, next: CallHandler): Promise<unknown> {
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const computation = lastValueFrom(next.handle()).then(async (value) => {
      const storedAt = Date.now();
      await this.cache.fill(key, value, this.ttlSeconds, storedAt).catch((err: Error) => {
        this.logger.warn(`cache write failed for ${key}: ${err.message}`);
        this.cache.hold(key, { value, storedAt });
      });
      return value;
    });
    this.inflight.set(key, computation);
    try {
      return await computation;
    } finally {
      this.inflight.delete(key);
    }
  }
}
