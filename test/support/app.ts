import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from '../../src/app.factory.js';
import { Redis } from 'ioredis';
import { deleteKeys, REDIS_URL } from './redis.js';
import { FakeUpstream } from './upstream.js';

/** The REFRESH_TOKEN every test app is booted with (POST /refresh needs it). */
export const TEST_REFRESH_TOKEN = 'test-refresh-token-0123456789';
export const AUTH = { authorization: `Bearer ${TEST_REFRESH_TOKEN}` };

/**
 * Boots the real app (same factory as main.ts) against the real Redis, under its own key
 * prefix, with the schedule off unless a test turns it on. Rate limits are high enough not to
 * get in the way unless a test lowers them.
 */
/**
 * For suites whose records carry fixed dates years ahead (newer than any fixture, and literal
 * in the expected answers): records dated past INGEST_MAX_AHEAD_MS are otherwise refused.
 */
export const DATED_AHEAD: Readonly<Record<string, string>> = { INGEST_MAX_AHEAD_MS: String(100 * 365 * 86_400_000) };

export async function bootApp(env: Record<string, string>): Promise<NestFastifyApplication> {
  const app = await createApp({
    REDIS_URL,
    INGEST_SCHEDULE_ENABLED: 'false',
    INGEST_ON_STARTUP: 'false',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    SENTIMENT_API_RETRY_BASE_MS: '10',
    REFRESH_TOKEN: TEST_REFRESH_TOKEN,
    THROTTLE_LIMIT: '100000',
    THROTTLE_REFRESH_LIMIT: '100000',
    // Tests change Redis behind the app's back (delete the cache key…) and expect it seen at once.
    CACHE_L1_TTL_MS: '0',
    // Off by default (a public deployment does not need it); the tests read the OpenAPI document.
    ...env,
  });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

/** POST /refresh as an authorised caller. */
export function postRefresh(app: NestFastifyApplication, url = '/refresh') {
  return app.inject({ method: 'POST', url, headers: AUTH });
}

export interface TestApp {
  redis: Redis;
  upstream: FakeUpstream;
  app: NestFastifyApplication;
}

/**
 * The usual e2e setup: a Redis client for assertions, a loopback upstream serving `payload`,
 * and the app booted against both under `prefix`. Undone by stopTestApp.
 */
export async function startTestApp(prefix: string, payload: unknown, env: Record<string, string> = {}): Promise<TestApp> {
  const redis = new Redis(REDIS_URL);
  const upstream = await new FakeUpstream(payload).start();
  try {
    const app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url, ...env });
    return { redis, upstream, app };
  } catch (err) {
    await stopTestApp(prefix, { redis, upstream });
    throw err;
  }
}

/** Closes what startTestApp opened (any part may be missing) and deletes the prefix's keys. */
export async function stopTestApp(prefix: string, t: Partial<TestApp>): Promise<void> {
  await t.app?.close();
  await t.upstream?.stop();
  if (t.redis) {
    await deleteKeys(t.redis, prefix);
    await t.redis.quit();
  }
}
