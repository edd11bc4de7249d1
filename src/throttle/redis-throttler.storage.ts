import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service.js';
import { LuaScript } from '../redis/lua-script.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { isRedisUnavailableError } from '../redis/redis-errors.js';
import { RedisClient } from '../redis/redis.types.js';

/**
 * Fixed window per key, atomic in one script: INCRBY the hit counter by ARGV[4] (PEXPIRE ttl when
 * the window starts); past the limit, set a block key for blockDuration. Returns hits, ms left in
 * the window, blocked (0/1) and ms left of the block.
 */
const INCREMENT = new LuaScript(`
local n = tonumber(ARGV[4])
local hits = redis.call('INCRBY', KEYS[1], n)
if hits == n then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
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

/**
 * What this instance knows of one client's window (see `increment`): Redis's count at its last
 * answer, the hits admitted here that it has not counted yet, and when the window ends.
 */
interface LocalWindow {
  keys: [string, string];
  args: { ttl: string; limit: string; block: string };
  known: number;
  /** Admitted here, not yet in a Redis answer (unsent or in flight). */
  pending: number;
  /** Admitted here, not yet sent. */
  unsent: number;
  endsAt: number;
  blockedUntil: number;
}

/**
 * How long hits admitted without waiting may go uncounted in Redis (other instances see them
 * that much later; the limit stays exact, see `increment`). One script call per client and
 * period instead of one per request.
 */
const FLUSH_MS = 50;

/** Clients whose windows are remembered; past that, new ones take the awaited path only. */
const MAX_WINDOWS = 10_000;

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
export class RedisThrottlerStorage implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Throttler');
  private lastWarned = 0;
  private readonly windows = new Map<string, LocalWindow>();
  private readonly dirty = new Set<LocalWindow>();
  private flushTimer: NodeJS.Timeout | undefined;
  /** FLUSH_MS; a test lengthens it to see what shutdown sends. */
  flushMs = FLUSH_MS;
  private closing = false;
  private sweepAt = 0;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * Counts one hit of `key`. While a client is below half its limit in a window this instance
   * has seen Redis answer for, the hit is admitted at once and counted in Redis within FLUSH_MS
   * (batched per client; a hit that waits takes the unsent ones along): waiting for Redis's count before
   * every request cost a round trip (~0.2 ms measured with `npm run bench`, issue 16) where the
   * answer could only be "go on". From half the limit on, every hit waits for Redis's count, so
   * the limit is exact where it bites. Across N instances, a burst reaching all of them before
   * any counted it can pass N × limit/2 hits (the limit itself for two instances).
   */
  async increment(key: string, ttl: number, limit: number, blockDuration: number, throttlerName: string): Promise<ThrottleRecord> {
    const base = this.keys.throttle(`${throttlerName}:${key}`);
    const now = Date.now();
    const local = this.windows.get(base);
    if (!this.closing && local !== undefined && now < local.endsAt && now >= local.blockedUntil && local.known + local.pending + 1 <= limit / 2) {
      local.pending++;
      local.unsent++;
      this.scheduleFlush(local);
      return { totalHits: local.known + local.pending, timeToExpire: Math.ceil((local.endsAt - now) / 1000), isBlocked: false, timeToBlockExpire: 0 };
    }
    const window = local ?? this.remember(base, ttl, limit, blockDuration, now);
    // Hits admitted here and not sent yet go with this one, so Redis's answer counts them too.
    const unsent = window.unsent;
    window.unsent = 0;
    try {
      const [totalHits, ttlMs, blocked, blockMs] = await this.send(window, 1 + unsent, unsent);
      return { totalHits, timeToExpire: Math.ceil(ttlMs / 1000), isBlocked: blocked === 1, timeToBlockExpire: Math.ceil(blockMs / 1000) };
    } catch (err) {
      if (!this.failOpen(err)) throw err;
      return { totalHits: 0, timeToExpire: Math.ceil(ttl / 1000), isBlocked: false, timeToBlockExpire: 0 };
    }
  }

  /**
   * Adds `n` hits in Redis and takes its answer as what this instance knows of the window;
   * `wasPending` of them were admitted already (counted in `pending` until Redis counts them).
   */
  private async send(window: LocalWindow, n: number, wasPending: number): Promise<number[]> {
    const sentAt = Date.now();
    try {
      // Both keys in one cluster slot: the script touches them together.
      const reply = ((await INCREMENT.run(this.redis, window.keys, [window.args.ttl, window.args.limit, window.args.block, String(n)])) as number[]).map(Number);
      const [hits, ttlMs, blocked, blockMs] = reply;
      // Answers come back in the order sent (one connection): the latest counts everything sent before it.
      window.known = hits;
      window.endsAt = sentAt + ttlMs;
      window.blockedUntil = blocked === 1 ? sentAt + blockMs : 0;
      return reply;
    } finally {
      window.pending -= wasPending;
    }
  }

  private scheduleFlush(window: LocalWindow): void {
    this.dirty.add(window);
    this.flushTimer ??= setTimeout(() => void this.flush(), this.flushMs).unref();
  }

  /** Sends the hits admitted and not yet sent: one script call per client. */
  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const windows = [...this.dirty];
    this.dirty.clear();
    const sends = windows.map(async (w) => {
      const n = w.unsent;
      w.unsent = 0;
      if (n === 0) return;
      try {
        await this.send(w, n, n);
      } catch (err) {
        // These hits were answered already: only their count is lost.
        if (!this.failOpen(err)) this.logger.error(`rate-limit count lost: ${(err as Error).message}`);
      }
    });
    await Promise.all(sends);
  }

  /** Before RedisModule quits: the hits admitted and not yet counted go to Redis. */
  async beforeApplicationShutdown(): Promise<void> {
    // Requests still arriving until the server closes wait for Redis's count like a first hit.
    this.closing = true;
    clearTimeout(this.flushTimer);
    await this.flush();
  }

  /** A new client's window, remembered when there is room (expired ones are dropped first). */
  private remember(base: string, ttl: number, limit: number, blockDuration: number, now: number): LocalWindow {
    const window: LocalWindow = {
      keys: [this.keys.sameSlot(base, 'hits'), this.keys.sameSlot(base, 'block')],
      args: { ttl: String(Math.max(1, Math.round(ttl))), limit: String(limit), block: String(Math.max(1, Math.round(blockDuration))) },
      known: 0,
      pending: 0,
      unsent: 0,
      endsAt: 0,
      blockedUntil: 0,
    };
    // Expired windows are swept at most once a second: a full map of live clients must not cost
    // every new client's request a walk over all of them.
    if (this.windows.size >= MAX_WINDOWS && now >= this.sweepAt) {
      this.sweepAt = now + 1000;
      for (const [k, w] of this.windows) if (w.endsAt <= now && w.pending === 0) this.windows.delete(k);
    }
    if (this.windows.size < MAX_WINDOWS) this.windows.set(base, window);
    return window;
  }

  /** While Redis is away the limiter fails open (see the class comment): true if that is why `err` happened. */
  private failOpen(err: unknown): boolean {
    if (!isRedisUnavailableError(err)) return false;
    this.metrics.redisErrors.inc({ kind: 'command' });
    if (Date.now() - this.lastWarned > 10_000) {
      this.lastWarned = Date.now();
      this.logger.warn(`rate limiting suspended while Redis is unavailable: ${(err as Error).message}`);
    }
    return true;
  }
}
