import { Controller, Get, Headers, NotFoundException, Res, UnauthorizedException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { BearerToken } from '../common/bearer-token.js';
import { SkipThrottle } from '../throttle/throttle.constants.js';
import { Env } from '../config/env.validation.js';
import { MetricsService } from './metrics.service.js';

export const METRICS_UNAUTHORIZED = 'Missing or invalid bearer token (Authorization: Bearer <METRICS_TOKEN>)';

/**
 * Prometheus scrape endpoint (text exposition format) on the API port. Not rate limited, not in
 * Swagger. 404 when METRICS_ENABLED=false or when METRICS_PORT moves it to its own listener
 * (MetricsPortServer); 401 without `Authorization: Bearer <METRICS_TOKEN>` when that is set.
 */
@ApiExcludeController()
@SkipThrottle()
@Controller('metrics')
export class MetricsController {
  private readonly enabled: boolean;
  private readonly token: BearerToken;

  constructor(
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = config.get('METRICS_ENABLED', { infer: true }) && config.get('METRICS_PORT', { infer: true }) === 0;
    this.token = new BearerToken(config.get('METRICS_TOKEN', { infer: true }));
  }

  @Get()
  scrape(@Headers('authorization') authorization: string | undefined, @Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    if (!this.enabled) throw new NotFoundException('Cannot GET /metrics');
    if (this.token.configured && !this.token.matches(authorization)) {
      void reply.header('WWW-Authenticate', 'Bearer');
      throw new UnauthorizedException(METRICS_UNAUTHORIZED);
    }
    // Set for a scrape only (not by @Header): on a refusal Nest's adapter warned, per request, that
    // this type did not match the JSON error, and anyone may send those.
    void reply.header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8').header('Cache-Control', 'no-store');
    return this.metrics.render();
  }
}
