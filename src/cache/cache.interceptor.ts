import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { from, lastValueFrom, Observable } from 'rxjs';
import { Env } from '../config/env.validation.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { CACHE_KEY_METADATA } from './cache.constants.js';
import { CACHE_FAST_PATH_METADATA, CacheFastPath } from './cache.fast-path.js';
import { CacheService } from './cache.service.js';

/**
 * Redis-backed response cache for GET handlers (shared by every instance), with an
 * `X-Cache: HIT|MISS` header and single-flight: concurrent misses for one key in this process
 * run the handler once. Nest's stock CacheInterceptor does neither, and its Redis store would
 * bring a second Redis client; this one uses the app's client and key builder.
 */
@Injectable()
export class RedisCacheInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Cache');
  private readonly ttlSeconds: number;
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly cache: CacheService,
    private readonly keys: RedisKeys,
    private readonly reflector: Reflector,
    private readonly adapterHost: HttpAdapterHost,
    config: ConfigService<Env, true>,
    private readonly fastPath: CacheFastPath,
  ) {
    this.ttlSeconds = config.get('CACHE_TTL_SECONDS', { infer: true });
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const adapter = this.adapterHost.httpAdapter;
    const request = http.getRequest();
    if (adapter.getRequestMethod(request) !== 'GET') return next.handle();
    const name = this.reflector.get<string | undefined>(CACHE_KEY_METADATA, context.getHandler());
    const key = this.keys.cache(name ?? `url:${adapter.getRequestUrl(request)}`);
    const response = http.getResponse();
    // Lets CacheFastPath answer later hits of this URL from memory, before Nest (opt-in per handler).
    if (this.reflector.get<boolean | undefined>(CACHE_FAST_PATH_METADATA, context.getHandler())) {
      this.fastPath.learn(adapter.getRequestUrl(request), key);
    }
    return from(this.serve(key, next, (hit) => adapter.setHeader(response, 'X-Cache', hit ? 'HIT' : 'MISS')));
  }

  private async serve(key: string, next: CallHandler, mark: (hit: boolean) => void): Promise<unknown> {
    const cached = await this.cache.get(key).catch((err: Error) => {
      this.logger.warn(`cache read failed for ${key}: ${err.message}`);
      return null;
    });
    if (cached) {
      mark(true);
      return cached.value;
    }
    mark(false);
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const computation = lastValueFrom(next.handle()).then(async (value) => {
      await this.cache.set(key, value, this.ttlSeconds).catch((err: Error) => {
        this.logger.warn(`cache write failed for ${key}: ${err.message}`);
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
