import { Inject, Injectable, Logger } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service.js';
import { LuaScript } from '../redis/lua-script.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { isRedisUnavailableError } from '../redis/redis-errors.js';
import { RedisClient } from '../redis/redis.types.js';

/**
 * Fixed window per key, atomic in one script: INCR the hit counter (PEXPIRE ttl on the first
 * hit); past the limit, set a block key for blockDuration. Returns hits, ms left in the window,
 * blocked (0/1) and ms left of the block.
 */
const INCREMENT = new LuaScript(`
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
local blockTtl = redis.call('PTTL', KEYS[2])
if blockTtl > 0 then return {hits, ttl, 1, blockTtl} end
if hits > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return {hits, ttl, 1, tonumber(ARGV[3])}
end
return {hits, ttl, 0, 0}
`);

export interface ThrottleRecord {
  totalHits: number;
  /** Seconds left in the window. */
  timeToExpire: number;
  isBlocked: boolean;
  /** Seconds left of the block (Retry-After). */
  timeToBlockExpire: number;
}

/**
 * Rate-limit counters on the app's one ioredis client, so limits hold across instances.
 * While Redis is away it fails open (requests pass, unthrottled): refusing every request
 * because the limiter cannot count would turn a Redis outage into a full outage, and the
 * handlers answer 503 (or a stale summary) on their own.
 */
@Injectable()
export class RedisThrottlerStorage {
  private readonly logger = new Logger('Throttler');
  private lastWarned = 0;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly metrics: MetricsService,
  ) {}

  async increment(key: string, ttl: number, limit: number, blockDuration: number, throttlerName: string): Promise<ThrottleRecord> {
    const base = this.keys.throttle(`${throttlerName}:${key}`);
    try {
      // Both keys in one cluster slot: the script touches them together.
      const reply = (await INCREMENT.run(this.redis, [this.keys.sameSlot(base, 'hits'), this.keys.sameSlot(base, 'block')], [
        String(Math.max(1, Math.round(ttl))),
        String(limit),
        String(Math.max(1, Math.round(blockDuration))),
      ])) as number[];
      const [totalHits, ttlMs, blocked, blockMs] = reply.map(Number);
      return { totalHits, timeToExpire: Math.ceil(ttlMs / 1000), isBlocked: blocked === 1, timeToBlockExpire: Math.ceil(blockMs / 1000) };
    } catch (err) {
      if (!isRedisUnavailableError(err)) throw err;
      this.metrics.redisErrors.inc({ kind: 'command' });
      if (Date.now() - this.lastWarned > 10_000) {
        this.lastWarned = Date.now();
        this.logger.warn(`rate limiting suspended while Redis is unavailable: ${(err as Error).message}`);
      }
      return { totalHits: 0, timeToExpire: Math.ceil(ttl / 1000), isBlocked: false, timeToBlockExpire: 0 };
    }
  }
}
