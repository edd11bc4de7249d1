import { Inject, Injectable } from '@nestjs/common';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisClient } from '../redis/redis.types.js';

export interface CacheEntry<T> {
  value: T;
  /** Epoch ms when the value was computed. */
  storedAt: number;
}

/** JSON values in Redis with a TTL, shared by every instance. Keys come from RedisKeys. */
@Injectable()
export class CacheService {
  constructor(@Inject(REDIS_CLIENT) private readonly redis: RedisClient) {}

  async get<T>(key: string): Promise<CacheEntry<T> | null> {
    const raw = await this.redis.get(key);
    if (raw === null) return null;
    try {
      const entry = JSON.parse(raw) as CacheEntry<T>;
      return typeof entry === 'object' && entry !== null && 'value' in entry ? entry : null;
    } catch {
      return null; // not ours or corrupted: a miss, overwritten on the next set
    }
  }

  async set<T>(key: string, value: T, ttlSeconds: number, storedAt = Date.now()): Promise<void> {
    const entry: CacheEntry<T> = { value, storedAt };
    await this.redis.set(key, JSON.stringify(entry), 'EX', ttlSeconds);
  }
}
