import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { connectRedis, reconnectDelay } from './redis.factory.js';
import { redactRedisUrl } from './redis-url.js';

describe('redis connection helpers', () => {
  it('never logs the password', () => {
    expect(redactRedisUrl('redis://user:s3cret@host:6380/2')).toBe('redis://user:***@host:6380/2');
    expect(redactRedisUrl('rediss://:s3cret@host')).toBe('rediss://:***@host');
    expect(redactRedisUrl('redis://host:6379')).toBe('redis://host:6379');
  });

  it('backs off exponentially with jitter, capped', () => {
    for (let i = 0; i < 50; i++) {
      const d1 = reconnectDelay(1, 100, 5000);
      expect(d1).toBeGreaterThanOrEqual(50);
      expect(d1).toBeLessThanOrEqual(100);
      const d5 = reconnectDelay(5, 100, 5000);
      expect(d5).toBeGreaterThanOrEqual(800);
      expect(d5).toBeLessThanOrEqual(1600);
      expect(reconnectDelay(30, 100, 5000)).toBeLessThanOrEqual(5000);
    }
  });

  it('gives up after the startup wait with one line naming the URL without password', async () => {
    const logger = new Logger('test');
    jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    await expect(
      connectRedis(
        {
          REDIS_URL: 'redis://:hunter2@127.0.0.1:1/0', // nothing listens on port 1
          REDIS_CONNECT_TIMEOUT_MS: 200,
          REDIS_COMMAND_TIMEOUT_MS: 200,
          REDIS_MAX_RETRIES_PER_REQUEST: 0,
          REDIS_RETRY_BASE_MS: 20,
          REDIS_RETRY_MAX_MS: 50,
          REDIS_STARTUP_WAIT_MS: 300,
          REDIS_PROTOCOL: 3,
        },
        'test',
        logger,
      ),
    ).rejects.toThrow(/^Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0 is not reachable after 300 ms \(.*ECONNREFUSED.*\)$/);
  });
});
