import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { REDIS_CLIENT, REDIS_SUBSCRIBER } from './redis.constants.js';
import { connectRedis } from './redis.factory.js';
import { failFastOnStall } from './redis-stall.js';
import { RedisKeys } from './redis-keys.service.js';
import { RedisClient } from './redis.types.js';

/**
 * The Redis connections of the app (a single server, or a Redis Cluster when
 * REDIS_CLUSTER_NODES is set): the one client for commands, and a subscriber for pub/sub
 * (a subscribed connection can run nothing else). Async factories connect and PING before
 * anything that depends on them is built; both are QUIT on shutdown (app.close(), on SIGTERM in main.ts).
 * After a reconnect the subscriber's channel is subscribed again by NotificationsService (on a
 * single server; ioredis's own autoResubscribe leaves a failure unhandled), by the Cluster itself otherwise.
 */
@Global()
@Module({
  providers: [
    {
      provide: REDIS_CLIENT,
      inject: [ConfigService],
      useFactory: async (config: ConfigService<Env, true>) => {
        const logger = new Logger('Redis');
        const client = await connectRedis(configSettings(config), 'is-bitcoin-lit', logger);
        // One command timeout per request while Redis stalls, not one per call (redis-stall.ts).
        failFastOnStall(client, logger);
        return client;
      },
    },
    {
      provide: REDIS_SUBSCRIBER,
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) =>
        connectRedis(configSettings(config), 'is-bitcoin-lit:subscriber', new Logger('RedisSubscriber')),
    },
    RedisKeys,
  ],
  exports: [REDIS_CLIENT, REDIS_SUBSCRIBER, RedisKeys],
})
export class RedisModule implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    @Inject(REDIS_SUBSCRIBER) private readonly subscriber: RedisClient,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([this.close(this.redis, 'Redis connection'), this.close(this.subscriber, 'Redis subscriber connection')]);
  }

  private async close(client: RedisClient, what: string): Promise<void> {
    try {
      await client.quit();
      this.logger.log(`${what} closed`);
    } catch {
      client.disconnect(); // already down: drop the socket and stop reconnecting
    }
  }
}

function configSettings(config: ConfigService<Env, true>) {
  const get = <K extends keyof Env>(k: K) => config.get(k, { infer: true }) as Env[K];
  return {
    REDIS_URL: get('REDIS_URL'),
    REDIS_CONNECT_TIMEOUT_MS: get('REDIS_CONNECT_TIMEOUT_MS'),
    REDIS_COMMAND_TIMEOUT_MS: get('REDIS_COMMAND_TIMEOUT_MS'),
    REDIS_MAX_RETRIES_PER_REQUEST: get('REDIS_MAX_RETRIES_PER_REQUEST'),
    REDIS_RETRY_BASE_MS: get('REDIS_RETRY_BASE_MS'),
    REDIS_RETRY_MAX_MS: get('REDIS_RETRY_MAX_MS'),
    REDIS_STARTUP_WAIT_MS: get('REDIS_STARTUP_WAIT_MS'),
    REDIS_PROTOCOL: get('REDIS_PROTOCOL'),
    REDIS_CLUSTER_NODES: get('REDIS_CLUSTER_NODES'),
    REDIS_STARTUP_MODE: get('REDIS_STARTUP_MODE'),
  };
}
