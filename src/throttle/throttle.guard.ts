import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TooManyRequestsException } from '../common/errors.js';
import { Env } from '../config/env.validation.js';
import { PendingThrottles, ThrottleVerdict } from './pending-throttles.js';
import { RedisThrottlerStorage, ThrottleRecord } from './redis-throttler.storage.js';
import { COUNT_ALONGSIDE, SKIP_THROTTLE, STRICT_THROTTLE } from './throttle.constants.js';

interface Limit {
  name: string;
  limit: number;
}

/** What the last count of a client on a route said: hits left, until when (epoch ms). */
interface Headroom {
  remaining: number;
  until: number;
}

/** Clients whose last count is remembered (per process, a hint only); cleared when full. */
const MAX_HEADROOM_ENTRIES = 10_000;

/**
 * Fixed-window rate limit per client IP (the proxy's X-Forwarded-For client when TRUST_PROXY),
 * counted in Redis so it holds across instances: `default` (THROTTLE_LIMIT) on every route but
 * those marked @SkipThrottle, plus `refresh` (THROTTLE_REFRESH_LIMIT) on @StrictThrottle ones.
 * Over the limit: 429 with Retry-After. Same headers as @nestjs/throttler (X-RateLimit-*).
 *
 * On @CountAlongside() handlers the count runs alongside the handler instead of before it when
 * this process's last count for the client, in the current window, left more than a tenth of the
 * limit: the verdict still comes from Redis (ThrottleVerdictInterceptor applies it before the
 * answer is sent), so limits stay exact across instances; the memory only decides whether the
 * handler may start before the count is back. A client without a fresh count here, near its
 * limit or refused goes through the count first, so a refused client costs one Redis call a
 * request, not a query.
 *
 * Why not @nestjs/throttler itself: it is CommonJS and require()s the ESM-only Nest 12, which
 * Node 20 runs but Jest on Node 20 cannot load, so it could not be tested here.
 */
@Injectable()
export class ThrottleGuard implements CanActivate {
  private readonly ttlMs: number;
  private readonly defaultLimit: number;
  private readonly refreshLimit: number;
  private readonly headroom = new Map<string, Headroom>();

  constructor(
    private readonly storage: RedisThrottlerStorage,
    private readonly pending: PendingThrottles,
    private readonly reflector: Reflector,
    config: ConfigService<Env, true>,
  ) {
    this.ttlMs = config.get('THROTTLE_TTL_MS', { infer: true });
    this.defaultLimit = config.get('THROTTLE_LIMIT', { infer: true });
    this.refreshLimit = config.get('THROTTLE_REFRESH_LIMIT', { infer: true });
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true; // WebSocket messages: the upgrade request was counted
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(SKIP_THROTTLE, targets)) return true;
    const limits: Limit[] = [];
    if (this.defaultLimit > 0) limits.push({ name: 'default', limit: this.defaultLimit });
    if (this.reflector.getAllAndOverride<boolean>(STRICT_THROTTLE, targets)) limits.push({ name: 'refresh', limit: this.refreshLimit });
    if (limits.length === 0) return true;

    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    // Per route, so heavy traffic to one endpoint does not eat another's budget.
    const key = `${request.method}:${request.routeOptions.url ?? 'unmatched'}:${request.ip}`;
    if (limits.length === 1 && this.reflector.getAllAndOverride<boolean>(COUNT_ALONGSIDE, targets) && this.hasHeadroom(key, limits[0].limit)) {
      this.pending.put(request, this.count(key, limits[0], reply));
      return true;
    }
    for (const limit of limits) (await this.count(key, limit, reply))();
    return true;
  }

  /** Counts the request in Redis; the verdict throws the 429 or sets the headers. */
  private async count(key: string, { name, limit }: Limit, reply: FastifyReply): Promise<ThrottleVerdict> {
    const record = await this.storage.increment(key, this.ttlMs, limit, this.ttlMs, name);
    if (name === 'default') this.remember(key, limit, record);
    return () => {
      if (record.isBlocked) {
        const seconds = Math.max(1, record.timeToBlockExpire);
        throw new TooManyRequestsException(`Too many requests; retry in ${seconds} s`, seconds);
      }
      const suffix = name === 'default' ? '' : `-${name}`;
      void reply.header(`X-RateLimit-Limit${suffix}`, limit);
      void reply.header(`X-RateLimit-Remaining${suffix}`, Math.max(0, limit - record.totalHits));
      void reply.header(`X-RateLimit-Reset${suffix}`, record.timeToExpire);
    };
  }

  private hasHeadroom(key: string, limit: number): boolean {
    const last = this.headroom.get(key);
    return last !== undefined && Date.now() < last.until && last.remaining > Math.max(1, Math.ceil(limit / 10));
  }

  private remember(key: string, limit: number, record: ThrottleRecord): void {
    if (this.headroom.size >= MAX_HEADROOM_ENTRIES) this.headroom.clear();
    const remaining = record.isBlocked ? 0 : limit - record.totalHits;
    // timeToExpire is rounded up to whole seconds: the hint may outlive the window by < 1 s,
    // which only means the next window's first request may run alongside its count too.
    this.headroom.set(key, { remaining, until: Date.now() + record.timeToExpire * 1000 });
  }
}
