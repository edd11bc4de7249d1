import { jest } from '@jest/globals';
import type { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env.validation.js';
import type { RedisClient } from '../redis/redis.types.js';
import { CacheService } from './cache.service.js';

describe('CacheService: the in-process copy', () => {
  const TTL = 1000;
  let now: number;
  let stored: Map<string, string>;
  let gets: number;
  let pending: Array<() => void>;
  let cache: CacheService;
  const entry = (value: unknown) => JSON.stringify({ value, storedAt: 1 });

  beforeEach(() => {
    now = 1_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
    stored = new Map([['k', entry('first')]]);
    gets = 0;
    pending = [];
    // A Redis GET that answers only when the test lets it (release()), with what is stored then.
    const redis = {
      get: (key: string) => {
        gets++;
        return new Promise<string | null>((resolve) => pending.push(() => resolve(stored.get(key) ?? null)));
      },
      set: () => Promise.resolve('OK'),
      evalsha: () => Promise.resolve(1), // setUnlessNewer's script: stored
    } as unknown as RedisClient;
    cache = new CacheService(redis, { get: () => TTL } as unknown as ConfigService<Env, true>);
  });
  afterEach(() => jest.restoreAllMocks());

  const release = async () => {
    for (const answer of pending.splice(0)) answer();
    await new Promise((resolve) => setImmediate(resolve));
  };
  const held = () => (cache.peekJson('k') ? JSON.parse(cache.peekJson('k')!.body) : undefined);
  async function load() {
    const read = cache.get('k');
    await release();
    await read;
  }

  it('serves an expired copy while one read refreshes it, then the refreshed copy', async () => {
    await load();
    expect(held()).toBe('first');
    stored.set('k', entry('second'));
    now += TTL; // expired
    expect(held()).toBe('first');
    expect(held()).toBe('first');
    expect(gets).toBe(2); // the load, and one refresh for both peeks
    const viaNest = cache.get('k'); // a request through Nest meanwhile shares that read
    expect(gets).toBe(2);
    await release();
    expect((await viaNest)?.value).toBe('second');
    expect(held()).toBe('second');
  });

  it('does not serve a copy that expired a whole CACHE_L1_TTL_MS ago', async () => {
    await load();
    now += 2 * TTL;
    expect(cache.peekJson('k')).toBeUndefined();
    expect(gets).toBe(1);
  });

  it('drops the copy when the refresh finds no entry (a miss is never remembered) or fails', async () => {
    await load();
    stored.delete('k');
    now += TTL;
    expect(held()).toBe('first');
    await release();
    expect(cache.peekJson('k')).toBeUndefined();
  });

  it('keeps its own write over a refresh that was in flight', async () => {
    await load();
    now += TTL;
    expect(held()).toBe('first'); // refresh started; Redis (the stub) still answers 'first'
    await cache.setUnlessNewer('k', 'own', 60, now);
    await release();
    expect(held()).toBe('own');
  });

  it('keeps the newest entry it has seen as the last good one, refreshed for the fast path or written, after its copy is gone', async () => {
    expect(cache.lastGood('k')).toBeUndefined();
    await load();
    expect(cache.lastGood('k')?.value).toBe('first');
    // A refresh started by the fast path (no request through Nest) brings a newer one.
    stored.set('k', JSON.stringify({ value: 'second', storedAt: 2 }));
    now += TTL;
    held();
    await release();
    expect(cache.lastGood('k')?.value).toBe('second');
    // An ingest's write (setUnlessNewer), then the copy long expired: still the last good one.
    await cache.setUnlessNewer('k', 'primed', 60, now, 3);
    now += 10 * TTL;
    expect(cache.peekJson('k')).toBeUndefined();
    expect(cache.lastGood('k')).toEqual({ value: 'primed', storedAt: 3 });
    // An older entry read later does not replace it.
    stored.set('k', entry('older'));
    const read = cache.get('k');
    await release();
    await read;
    expect(cache.lastGood('k')?.value).toBe('primed');
  });

  it('holds a value whose write Redis refused, as a copy, without Redis', async () => {
    cache.hold('k', { value: 'computed', storedAt: 5 });
    expect(held()).toBe('computed');
    expect((await cache.get('k'))?.value).toBe('computed');
    expect(gets).toBe(0);
    expect(cache.lastGood('k')?.value).toBe('computed');
  });
});
