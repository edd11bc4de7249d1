import { CanActivate, ExecutionContext, ForbiddenException, Injectable, Logger, UnauthorizedException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { createHash, timingSafeEqual } from 'node:crypto';
import { Env } from '../config/env.validation.js';

const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/;

/** SHA-256 first, so both sides have the same length and the comparison is constant time. */
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * POST /refresh calls the upstream and writes to Redis: it needs `Authorization: Bearer
 * <REFRESH_TOKEN>`. Without REFRESH_TOKEN configured the endpoint is disabled (403), and
 * startup says so once.
 */
@Injectable()
export class RefreshTokenGuard implements CanActivate {
  private readonly expected: Buffer | null;

  constructor(config: ConfigService<Env, true>) {
    const token = config.get('REFRESH_TOKEN', { infer: true });
    this.expected = token ? digest(token) : null;
    if (!token) {
      new Logger('Security').warn('REFRESH_TOKEN is not set: POST /refresh is disabled (403); scheduled ingest still runs');
    }
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.expected) throw new ForbiddenException('POST /refresh is disabled on this server (REFRESH_TOKEN is not set)');
    const header = context.switchToHttp().getRequest<{ headers: Record<string, unknown> }>().headers.authorization;
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    if (!match || !timingSafeEqual(digest(match[1]), this.expected)) {
      throw new UnauthorizedException('Missing or invalid bearer token (Authorization: Bearer <REFRESH_TOKEN>)');
    }
    return true;
  }
}
