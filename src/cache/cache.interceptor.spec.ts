import { CallHandler, ExecutionContext, Logger } from '@nestjs/common';
import { jest } from '@jest/globals';
import { ConfigService } from '@nestjs/config';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { lastValueFrom, of, throwError } from 'rxjs';
import { MetricsService } from '../metrics/metrics.service.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { CacheFastPath } from './cache.fast-path.js';
import { CacheInterceptor } from './cache.interceptor.js';
import { CacheEntry, CacheService } from './cache.service.js';

/** A CacheService whose Redis can be "down" (rejecting like ioredis without a connection). */
class FakeCache {
  down = false;
  /** Writes refused as Redis refuses them under `maxmemory` (reads still work). */
  full = false;
  store = new Map<string, CacheEntry<unknown>>();
  /** What CacheService keeps in memory: its copies (held) and the newest entry seen. */
  held = new Map<string, CacheEntry<unknown>>();
  newest = new Map<string, CacheEntry<unknown>>();
  async get(key: string) {
    const copy = this.held.get(key);
    if (copy) return copy;
    if (this.down) throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
    const entry = this.store.get(key) ?? null;
    if (entry) this.newest.set(key, entry);
    return entry;
  }
  async set(key: string, value: unknown, _ttl: number, storedAt = Date.now()) {
    if (this.down) throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
    if (this.full) throw new Error("OOM command not allowed when used memory > 'maxmemory'.");
    this.store.set(key, { value, storedAt });
    this.newest.set(key, { value, storedAt });
  }
  async fill(key: string, value: unknown, ttl: number, storedAt = Date.now()) {
    if (this.store.has(key) && !this.down) return false;
    await this.set(key, value, ttl, storedAt);
    return true;
  }
  hold(key: string, entry: CacheEntry<unknown>) {
    this.held.set(key, entry);
    this.newest.set(key, entry);
  }
  lastGood(key: string) {
    return this.newest.get(key);
  }
}

describe('CacheInterceptor stale serving', () => {
  const headers: Record<string, string> = {};
  const cache = new FakeCache();
  const counted: string[] = [];
  const interceptor = new CacheInterceptor(
    cache as unknown as CacheService,
    { cache: (name?: string) => `p:cache${name ? `:${name}` : ''}` } as unknown as RedisKeys,
    { get: () => 'summary' } as unknown as Reflector,
    {
      httpAdapter: {
        getRequestMethod: () => 'GET',
        getRequestUrl: () => '/is-bitcoin-lit',
        setHeader: (_res: unknown, k: string, v: string) => (headers[k] = v),
      },
    } as unknown as HttpAdapterHost,
    { cache: { inc: ({ result }: { result: string }) => counted.push(result) } } as unknown as MetricsService,
    { get: () => 60 } as unknown as ConfigService<never, true>,
    { learn: () => undefined } as unknown as CacheFastPath,
  );
  const context = { switchToHttp: () => ({ getRequest: () => ({}), getResponse: () => ({}) }), getHandler: () => () => undefined } as unknown as ExecutionContext;
  const run = (handler: CallHandler) => lastValueFrom(interceptor.intercept(context, handler));
  const redisDown = { handle: () => throwError(() => new Error('Connection is closed.')) };

  beforeAll(() => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  it('without a last good value, a Redis failure propagates (the filter makes it a 503)', async () => {
    cache.down = true;
    await expect(run(redisDown)).rejects.toThrow("Stream isn't writeable");
  });

  it('serves the last good value with X-Cache: STALE and its Age while Redis is down', async () => {
    cache.down = false;
    expect(await run({ handle: () => of({ answer: 1 }) })).toEqual({ answer: 1 });
    expect(headers['X-Cache']).toBe('MISS');
    cache.down = true;
    expect(await run(redisDown)).toEqual({ answer: 1 });
    expect(headers).toMatchObject({ 'X-Cache': 'STALE', Age: '0' });
    expect(counted).toEqual(['miss', 'stale']);
  });

  it('does not run the handler when Redis failed the cache read: stale at once, no second wait on Redis', async () => {
    cache.down = false;
    expect(await run({ handle: () => of({ answer: 1 }) })).toEqual({ answer: 1 });
    cache.down = true;
    const handle = jest.fn(() => of({ answer: 2 }));
    expect(await run({ handle })).toEqual({ answer: 1 });
    expect(headers['X-Cache']).toBe('STALE');
    expect(handle).not.toHaveBeenCalled();
  });

  it('a miss does not replace what was written while it computed (an ingest refresh, newer)', async () => {
    cache.store.clear();
    cache.down = false;
    const refreshed = { value: { answer: 'refreshed' }, storedAt: 5 };
    const handle = () => {
      cache.store.set('p:cache:summary', refreshed); // the ingest's refresh lands mid-computation
      return of({ answer: 'computed from older data' });
    };
    expect(await run({ handle })).toEqual({ answer: 'computed from older data' }); // this request's own answer
    expect(cache.store.get('p:cache:summary')).toBe(refreshed);
  });

  it('does not hide errors that are not Redis outages', async () => {
    cache.store.clear();
    cache.down = false;
    await expect(run({ handle: () => throwError(() => new Error('bug')) })).rejects.toThrow('bug');
  });

  it('serves as STALE the newest value the cache has seen, also one this interceptor never answered (an ingest\'s write)', async () => {
    cache.store.clear();
    cache.newest.clear();
    cache.down = false;
    expect(await run({ handle: () => of({ answer: 'computed here' }) })).toEqual({ answer: 'computed here' });
    cache.newest.set('p:cache:summary', { value: { answer: 'primed by ingest' }, storedAt: Date.now() + 1 });
    cache.down = true;
    expect(await run(redisDown)).toEqual({ answer: 'primed by ingest' });
    expect(headers['X-Cache']).toBe('STALE');
  });

  it('holds a computed value in memory when Redis refuses its write (out of memory): the next request is a hit, not another computation', async () => {
    cache.store.clear();
    cache.down = false;
    cache.full = true;
    const handle = jest.fn(() => of({ answer: 'computed' }));
    expect(await run({ handle })).toEqual({ answer: 'computed' });
    expect(headers['X-Cache']).toBe('MISS');
    expect(await run({ handle })).toEqual({ answer: 'computed' });
    expect(headers['X-Cache']).toBe('HIT');
    expect(handle).toHaveBeenCalledTimes(1);
    cache.full = false;
    cache.held.clear();
  });
});
