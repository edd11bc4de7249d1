import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { REDIS_CLIENT } from './redis.constants.js';
import { connectRedis } from './redis.factory.js';
import { RedisKeys } from './redis-keys.service.js';
import { RedisClient } from './redis.types.js';

/**
 * The one Redis connection of the app (a single server, or a Redis Cluster when
 * REDIS_CLUSTER_NODES is set). The async factory connects and PINGs before anything that
 * depends on it is built; the client is QUIT on shutdown (enableShutdownHooks).
 */
@Global()
@Module({
  providers: [
    {
      provide: REDIS_CLIENT,
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) =>
        connectRedis(configSettings(config), 'is-bitcoin-lit', new Logger('Redis')),
    },
    RedisKeys,
  ],
  exports: [REDIS_CLIENT, RedisKeys],
})
export class RedisModule implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');

  constructor(@Inject(REDIS_CLIENT) private readonly redis: RedisClient) {}

  async onApplicationShutdown(): Promise<void> {
    try {
      await this.redis.quit();
      this.logger.log('Redis connection closed');
    } catch {
      this.redis.disconnect(); // already down: drop the socket and stop reconnecting
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
  };
}
