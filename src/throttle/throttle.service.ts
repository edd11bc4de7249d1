import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { clientKey } from '../common/client-address.js';
import { Env } from '../config/env.validation.js';
import { RedisThrottlerStorage, type ThrottleRecord } from './redis-throttler.storage.js';

/**
 * Rate-limit counting per client and route, in Redis (RedisThrottlerStorage): for ThrottleGuard,
 * and with the default limit (THROTTLE_LIMIT per THROTTLE_TTL_MS) for what the guard never sees:
 * a WebSocket handshake goes from Node's 'upgrade' event straight to the gateway.
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
   * Counts one request to `route` (`METHOD:/path`) from `address` against limit `name`: the
   * one place a client's counter is named, for ThrottleGuard and for `hit`.
   */
  count(route: string, address: string | undefined, name: string, limit: number): Promise<ThrottleRecord> {
    return this.storage.increment(`${route}:${clientKey(address)}`, this.ttlMs, limit, this.ttlMs, name);
  }

  /** Counts one request against the default limit; resolves with the seconds to wait when it is over it. */
  async hit(route: string, address: string): Promise<number | undefined> {
    if (this.limit <= 0) return undefined;
    const record = await this.count(route, address, 'default', this.limit);
    return record.isBlocked ? Math.max(1, record.timeToBlockExpire) : undefined;
  }
}
