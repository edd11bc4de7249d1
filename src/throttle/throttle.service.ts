import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { clientKey } from '../common/client-address.js';
import { Env } from '../config/env.validation.js';
import { RedisThrottlerStorage } from './redis-throttler.storage.js';

/**
 * The default rate limit (THROTTLE_LIMIT per THROTTLE_TTL_MS, per client and route) for what
 * does not pass ThrottleGuard: a WebSocket handshake goes from Node's 'upgrade' event straight
 * to the gateway, never through Nest's guards.
 */
@Injectable()
export class ThrottleService {
  private readonly ttlMs: number;
  private readonly limit: number;

  constructor(
    private readonly storage: RedisThrottlerStorage,
    config: ConfigService<Env, true>,
  ) {
    this.ttlMs = config.get('THROTTLE_TTL_MS', { infer: true });
    this.limit = config.get('THROTTLE_LIMIT', { infer: true });
  }

  /**
   * Counts one request to `route` (`METHOD:/path`, as the guard names it, so both share a
   * budget) from `address`; resolves with the seconds to wait when it is over the limit.
   */
  async hit(route: string, address: string): Promise<number | undefined> {
    if (this.limit <= 0) return undefined;
    const record = await this.storage.increment(`${route}:${clientKey(address)}`, this.ttlMs, this.limit, this.ttlMs, 'default');
    return record.isBlocked ? Math.max(1, record.timeToBlockExpire) : undefined;
  }
}
