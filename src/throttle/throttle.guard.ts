import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TooManyRequestsException } from '../common/errors.js';
import { Env } from '../config/env.validation.js';
import { SKIP_THROTTLE, STRICT_THROTTLE } from './throttle.constants.js';
import { ThrottleService } from './throttle.service.js';

interface Limit {
  name: string;
  limit: number;
}

/**
 * Fixed-window rate limit per client IP (the proxy's X-Forwarded-For client when TRUST_PROXY;
 * an IPv6 client by its /64, see clientKey),
 * counted in Redis so it holds across instances: `default` (THROTTLE_LIMIT) on every route but
 * those marked @SkipThrottle, plus `refresh` (THROTTLE_REFRESH_LIMIT) on @StrictThrottle ones.
 * Over the limit: 429 with Retry-After. Same headers as @nestjs/throttler (X-RateLimit-*).
 *
 * Why not @nestjs/throttler itself: it is CommonJS and require()s the ESM-only Nest 12, which
 * Node 20 runs but Jest on Node 20 cannot load, so it could not be tested here.
 */
@Injectable()
export class ThrottleGuard implements CanActivate {
  private readonly defaultLimit: number;
  private readonly refreshLimit: number;

  constructor(
    private readonly throttle: ThrottleService,
    private readonly reflector: Reflector,
    config: ConfigService<Env, true>,
  ) {
    this.defaultLimit = config.get('THROTTLE_LIMIT', { infer: true });
    this.refreshLimit = config.get('THROTTLE_REFRESH_LIMIT', { infer: true });
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true; // WebSocket messages: the gateway counts the handshake (ThrottleService)
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(SKIP_THROTTLE, targets)) return true;
    const limits: Limit[] = [];
    if (this.defaultLimit > 0) limits.push({ name: 'default', limit: this.defaultLimit });
    if (this.reflector.getAllAndOverride<boolean>(STRICT_THROTTLE, targets)) limits.push({ name: 'refresh', limit: this.refreshLimit });
    if (limits.length === 0) return true;

    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    // Per route, so heavy traffic to one endpoint does not eat another's budget. HEAD runs the
    // GET handler, so it counts against GET's (not a second budget of its own).
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    const route = `${method}:${request.routeOptions.url ?? 'unmatched'}`;
    for (const { name, limit } of limits) {
      const record = await this.throttle.count(route, request.ip, name, limit);
      if (record.isBlocked) {
        const seconds = Math.max(1, record.timeToBlockExpire);
        throw new TooManyRequestsException(`Too many requests; retry in ${seconds} s`, seconds);
      }
      const suffix = name === 'default' ? '' : `-${name}`;
      void reply.header(`X-RateLimit-Limit${suffix}`, limit);
      void reply.header(`X-RateLimit-Remaining${suffix}`, Math.max(0, limit - record.totalHits));
      void reply.header(`X-RateLimit-Reset${suffix}`, record.timeToExpire);
    }
    return true;
  }
}
