import { Logger } from '@nestjs/common';
import { Redis, RedisOptions } from 'ioredis';
import { Env } from '../config/env.validation.js';
import { redactRedisUrl } from './redis-url.js';
import { RedisClient } from './redis.types.js';

export type RedisConnectionSettings = Pick<
  Env,
  | 'REDIS_URL'
  | 'REDIS_CONNECT_TIMEOUT_MS'
  | 'REDIS_COMMAND_TIMEOUT_MS'
  | 'REDIS_MAX_RETRIES_PER_REQUEST'
  | 'REDIS_RETRY_BASE_MS'
  | 'REDIS_RETRY_MAX_MS'
  | 'REDIS_STARTUP_WAIT_MS'
  | 'REDIS_PROTOCOL'
> &
  Partial<Pick<Env, 'REDIS_STARTUP_MODE'>>;

/** Exponential backoff with full jitter on top of the base, capped; never gives up. */
export function reconnectDelay(attempt: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 20));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

export function redisOptions(s: RedisConnectionSettings, name: string): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: name,
    protocol: s.REDIS_PROTOCOL,
    connectTimeout: s.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: s.REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: s.REDIS_MAX_RETRIES_PER_REQUEST,
    retryStrategy: (times) => reconnectDelay(times, s.REDIS_RETRY_BASE_MS, s.REDIS_RETRY_MAX_MS),
    // A request must fail fast while Redis is away instead of queueing behind the reconnect.
    enableOfflineQueue: false,
  };
}

/**
 * Connects and PINGs before the app serves. Waits (the client retries with backoff) up to
 * REDIS_STARTUP_WAIT_MS, then fails with one line naming the URL without its password.
 * REDIS_STARTUP_MODE=degraded returns at once instead: the client keeps reconnecting in the
 * background, requests get 503 and readiness stays red until Redis answers.
 */
export async function connectRedis(s: RedisConnectionSettings, name: string, logger: Logger): Promise<RedisClient> {
  const safeUrl = redactRedisUrl(s.REDIS_URL);
  const client = new Redis(s.REDIS_URL, redisOptions(s, name));
  let lastError = 'no answer';
  let lastLogged = 0;
  client.on('error', (err: Error) => {
    lastError = err.message;
    // Reconnect loops emit an error per attempt; one line every 10 s is enough.
    if (Date.now() - lastLogged > 10_000) {
      lastLogged = Date.now();
      logger.warn(`Redis ${safeUrl}: ${err.message}`);
    }
  });
  const ready = new Promise<void>((resolve) => client.once('ready', () => resolve()));
  client.connect().catch(() => undefined); // failures are retried by retryStrategy; we wait for 'ready'
  if (s.REDIS_STARTUP_MODE === 'degraded') {
    void ready.then(() => logger.log(`Connected to Redis at ${safeUrl}`));
    logger.warn(`REDIS_STARTUP_MODE=degraded: serving without waiting for Redis at ${safeUrl}`);
    return client;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), s.REDIS_STARTUP_WAIT_MS);
  });
  try {
    const outcome = await Promise.race([ready, timedOut]);
    if (outcome === 'timeout') {
      throw new Error(`Redis at ${safeUrl} is not reachable after ${s.REDIS_STARTUP_WAIT_MS} ms (${lastError})`);
    }
    await client.ping();
    logger.log(`Connected to Redis at ${safeUrl}`);
    return client;
  } catch (err) {
    client.disconnect();
    if (err instanceof Error && err.message.startsWith('Redis at ')) throw err;
    throw new Error(`Redis at ${safeUrl} did not answer PING: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}
