import { jest } from '@jest/globals';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { REDIS_CLIENT } from '../src/redis/redis.constants.js';
import type { RedisClient } from '../src/redis/redis.types.js';
import { RedisKeys } from '../src/redis/redis-keys.service.js';
import { RedisThrottlerStorage } from '../src/throttle/redis-throttler.storage.js';
import { bootApp } from './support/app.js';
import { FaultRedisServer } from './support/fault-redis.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { waitFor } from './support/wait.js';

jest.setTimeout(30_000);

const MINUTE = 60_000;

/**
 * How the rate limit counts: below half the limit a hit is admitted without waiting for Redis
 * and counted there right after; from half the limit on every hit waits for Redis's count, so
 * the limit is exact where it bites, on one instance or several.
 */
describe('rate limit counting (e2e, real Redis)', () => {
  describe('on the shared Redis', () => {
    const prefix = uniquePrefix('rlcount');
    const apps: NestFastifyApplication[] = [];
    let redis: Redis;
    const boot = async (p: string, limit: number) => {
      const app = await bootApp({ REDIS_KEY_PREFIX: p, THROTTLE_LIMIT: String(limit), THROTTLE_TTL_MS: String(MINUTE), INGEST_ON_STARTUP: 'false' });
      apps.push(app);
      return app;
    };
    /** The Redis counter of GET /series hits from inject's client address in the current window. */
    const hitsKey = (app: NestFastifyApplication) => {
      const keys = app.get(RedisKeys);
      return keys.sameSlot(keys.throttle('default:GET:/series:127.0.0.1'), 'hits');
    };
    const get = async (app: NestFastifyApplication) => {
      const res = await app.inject({ method: 'GET', url: '/series' });
      return { status: res.statusCode, remaining: res.headers['x-ratelimit-remaining'] };
    };

    beforeAll(() => {
      redis = new Redis(REDIS_URL);
    });
    afterAll(async () => {
      for (const app of apps) await app.close();
      await deleteKeys(redis, prefix);
      redis.disconnect();
    });

    it('answers exactly THROTTLE_LIMIT requests, then 429, with X-RateLimit-Remaining counting down exactly', async () => {
      const app = await boot(`${prefix}:one`, 10);
      const answers = [];
      for (let i = 0; i < 11; i++) answers.push(await get(app));
      expect(answers).toEqual([...Array.from({ length: 10 }, (_, i) => ({ status: 200, remaining: String(9 - i) })), { status: 429, remaining: undefined }]);
    });

    it('counts in Redis the hits it admitted without waiting, so another instance sees them', async () => {
      const [a, b] = [await boot(`${prefix}:two`, 10), await boot(`${prefix}:two`, 10)];
      // a: one hit that waits (a's first in this window), then three below half the limit that do not.
      for (let i = 0; i < 4; i++) expect((await get(a)).status).toBe(200);
      await waitFor("a's hits counted in Redis", async () => (await redis.get(hitsKey(a))) === '4');
      // b's first hit waits for Redis's count, which holds a's four.
      expect(await get(b)).toEqual({ status: 200, remaining: '5' });
      const rest = [];
      for (let i = 0; i < 6; i++) rest.push((await get(b)).status);
      expect(rest).toEqual([200, 200, 200, 200, 200, 429]);
    });

    it('loses no count at shutdown: hits admitted without waiting are in Redis once the app has closed', async () => {
      const app = await boot(`${prefix}:close`, 10);
      app.get(RedisThrottlerStorage).flushMs = 10 * MINUTE; // only the shutdown sends them
      for (let i = 0; i < 3; i++) expect((await get(app)).status).toBe(200);
      const key = hitsKey(app);
      await app.close();
      apps.splice(apps.indexOf(app), 1);
      expect(await redis.get(key)).toBe('3');
    });
  });

  describe('on a private Redis that the test pauses', () => {
    let server: FaultRedisServer;
    let admin: Redis;
    let app: NestFastifyApplication;

    beforeAll(async () => {
      server = await new FaultRedisServer(false).start();
      admin = new Redis(server.url);
      app = await bootApp({ REDIS_URL: server.url, REDIS_COMMAND_TIMEOUT_MS: '10000', INGEST_ON_STARTUP: 'false', LOG_LEVEL: 'fatal' });
    });
    afterAll(async () => {
      await app?.close();
      admin?.disconnect();
      await server?.stop();
    });

    it('admits a hit below half the limit while Redis does not answer, and waits for Redis from half the limit on', async () => {
      const storage = app.get(RedisThrottlerStorage);
      const hit = () => storage.increment('client', MINUTE, 4, MINUTE, 'default');
      expect(await hit()).toMatchObject({ totalHits: 1, isBlocked: false }); // the window's first hit waits

      // A PING on the app's own connection while Redis is paused: its answer comes before that of
      // any command sent after it on that connection, and the second hit must not wait for it.
      await admin.call('CLIENT', 'PAUSE', '1000', 'ALL');
      let pingAnswered = false;
      const ping = app.get<RedisClient>(REDIS_CLIENT).ping().then(() => (pingAnswered = true));
      // 1 counted + 1 = 2 hits: half the limit, admitted at once.
      expect(await hit()).toMatchObject({ totalHits: 2, isBlocked: false });
      expect(pingAnswered).toBe(false);
      // 3 hits: past half, so it waits for Redis's count, which includes the second hit.
      expect(await hit()).toMatchObject({ totalHits: 3, isBlocked: false });
      expect(pingAnswered).toBe(true);
      await ping;
      expect(await hit()).toMatchObject({ totalHits: 4, isBlocked: false });
      expect(await hit()).toMatchObject({ totalHits: 5, isBlocked: true });
    });
  });
});
