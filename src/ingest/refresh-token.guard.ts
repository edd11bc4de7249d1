import { CanActivate, ExecutionContext, ForbiddenException, Injectable, Logger, UnauthorizedException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { FastifyReply } from 'fastify';
import { BearerToken } from '../common/bearer-token.js';
import { Env } from '../config/env.validation.js';

/**
 * POST /refresh calls the upstream and writes to Redis: it needs `Authorization: Bearer
 * <REFRESH_TOKEN>`. Without REFRESH_TOKEN configured the endpoint is disabled (403), and
 * startup says so once.
 */
@Injectable()
export class RefreshTokenGuard implements CanActivate {
  private readonly token: BearerToken;

  constructor(config: ConfigService<Env, true>) {
    const token = config.get('REFRESH_TOKEN', { infer: true });
    this.token = new BearerToken(token);
    if (!token) {
      new Logger('Security').warn('REFRESH_TOKEN is not set: POST /refresh is disabled (403); scheduled ingest still runs');
    }
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.token.configured) throw new ForbiddenException('POST /refresh is disabled on this server (REFRESH_TOKEN is not set)');
    const http = context.switchToHttp();
    const header = http.getRequest<{ headers: Record<string, unknown> }>().headers.authorization;
    if (!this.token.matches(header)) {
      // RFC 9110 §11.6.1: a 401 names the scheme it wants.
      void http.getResponse<FastifyReply>().header('WWW-Authenticate', 'Bearer');
      throw new UnauthorizedException('Missing or invalid bearer token (Authorization: Bearer <REFRESH_TOKEN>)');
    }
    return true;
  }
}
