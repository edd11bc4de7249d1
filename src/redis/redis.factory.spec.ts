import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { clusterOptions, connectRedis, describeTarget, parseClusterNode, reconnectDelay } from './redis.factory.js';
import { redactRedisUrl } from './redis-url.js';

/** Quick to give up; nothing listens on port 1. */
const UNREACHABLE = {
  REDIS_URL: 'redis://127.0.0.1:1/0',
  REDIS_CONNECT_TIMEOUT_MS: 200,
  REDIS_COMMAND_TIMEOUT_MS: 200,
  REDIS_MAX_RETRIES_PER_REQUEST: 0,
  REDIS_RETRY_BASE_MS: 20,
  REDIS_RETRY_MAX_MS: 50,
  REDIS_STARTUP_WAIT_MS: 300,
  REDIS_PROTOCOL: 3,
} as const;

describe('redis connection helpers', () => {
  it('never logs the password', () => {
    expect(redactRedisUrl('redis://user:s3cret@host:6380/2')).toBe('redis://user:***@host:6380/2');
    expect(redactRedisUrl('rediss://:s3cret@host')).toBe('rediss://:***@host');
    expect(redactRedisUrl('redis://host:6379')).toBe('redis://host:6379');
  });

  it('never logs a password given in the query (ioredis reads ?password=), any case or encoding', () => {
    expect(redactRedisUrl('redis://127.0.0.1:6441/?password=hunter2')).toBe('redis://127.0.0.1:6441/?password=***');
    expect(redactRedisUrl('redis://host/2?db=2&PASS=hunter2&family=6')).toBe('redis://host/2?db=2&PASS=***&family=6');
    expect(redactRedisUrl('redis://u:s3cret@host?Password=hunter2&pass%77ord=hunter2')).toBe('redis://u:***@host?Password=***&pass%77ord=***');
    expect(redactRedisUrl('redis://host?passenger=1')).toBe('redis://host?passenger=1');
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
      connectRedis({ ...UNREACHABLE, REDIS_URL: 'redis://:hunter2@127.0.0.1:1/0' }, 'test', logger),
    ).rejects.toThrow(/^Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0 is not reachable after 300 ms \(.*ECONNREFUSED.*\)$/);
  });

  it('names the URL without a password given in its query, when Redis is not reachable', async () => {
    const logger = new Logger('test');
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const failure = connectRedis({ ...UNREACHABLE, REDIS_URL: 'redis://127.0.0.1:1/?password=hunter2' }, 'test', logger);
    await expect(failure).rejects.toThrow(/^Redis at redis:\/\/127\.0\.0\.1:1\/\?password=\*\*\* is not reachable after 300 ms/);
    await expect(failure).rejects.not.toThrow(/hunter2/);
    expect(JSON.stringify(warn.mock.calls)).not.toMatch(/hunter2/);
  });

  const settings = {
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_CONNECT_TIMEOUT_MS: 200,
    REDIS_COMMAND_TIMEOUT_MS: 1500,
    REDIS_MAX_RETRIES_PER_REQUEST: 0,
    REDIS_RETRY_BASE_MS: 20,
    REDIS_RETRY_MAX_MS: 50,
    REDIS_STARTUP_WAIT_MS: 300,
    REDIS_PROTOCOL: 3 as const,
  };

  describe('Redis Cluster', () => {
    it('parses seed nodes, IPv6 included', () => {
      expect(parseClusterNode('redis-1:7000')).toEqual({ host: 'redis-1', port: 7000 });
      expect(parseClusterNode('[::1]:7001')).toEqual({ host: '::1', port: 7001 });
    });

    it('gives every node the timeouts, protocol and the credentials and TLS of REDIS_URL; the cluster owns reconnects', () => {
      const options = clusterOptions({ ...settings, REDIS_URL: 'rediss://app%40x:p%3Ass@ignored:6380' }, 'svc');
      expect(options).toMatchObject({ lazyConnect: true, enableOfflineQueue: false, scaleReads: 'master', slotsRefreshTimeout: 1500 });
      expect(options.redisOptions).toEqual({
        connectionName: 'svc',
        protocol: 3,
        connectTimeout: 200,
        commandTimeout: 1500,
        maxRetriesPerRequest: 0,
        username: 'app@x',
        password: 'p:ss',
        tls: {},
      });
      const delay = options.clusterRetryStrategy?.(1);
      expect(delay).toBeGreaterThanOrEqual(10);
      expect(delay).toBeLessThanOrEqual(20);
    });

    it('takes the credentials from the query too, as ioredis does for one server', () => {
      const { redisOptions } = clusterOptions({ ...settings, REDIS_URL: 'redis://ignored:6379/?username=app&password=p%26ss' }, 'svc');
      expect(redisOptions).toMatchObject({ username: 'app', password: 'p&ss' });
    });

    it('sends no credentials or TLS when REDIS_URL has none', () => {
      const { redisOptions } = clusterOptions(settings, 'svc');
      expect(redisOptions).not.toHaveProperty('password');
      expect(redisOptions).not.toHaveProperty('username');
      expect(redisOptions).not.toHaveProperty('tls');
    });

    it('names the seed nodes, never the password', () => {
      expect(describeTarget({ ...settings, REDIS_URL: 'redis://:pw@h:1', REDIS_CLUSTER_NODES: ['a:7000', 'b:7001'] })).toBe(
        'Redis Cluster (a:7000, b:7001)',
      );
      expect(describeTarget({ ...settings, REDIS_URL: 'redis://:pw@h:1', REDIS_CLUSTER_NODES: [] })).toBe('Redis at redis://:***@h:1');
    });

    it('gives up after the startup wait with one line naming the seed nodes', async () => {
      const logger = new Logger('test');
      jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
      await expect(
        connectRedis({ ...settings, REDIS_URL: 'redis://:hunter2@x:1', REDIS_CLUSTER_NODES: ['127.0.0.1:1'] }, 'test', logger),
      ).rejects.toThrow(/^Redis Cluster \(127\.0\.0\.1:1\) is not reachable after 300 ms \((?!.*hunter2).*\)$/);
    });
  });
});
