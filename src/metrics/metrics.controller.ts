import { Controller, Get, Header, NotFoundException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiExcludeController } from '@nestjs/swagger';
import { SkipThrottle } from '../throttle/throttle.constants.js';
import { Env } from '../config/env.validation.js';
import { MetricsService } from './metrics.service.js';

/** Prometheus scrape endpoint (text exposition format). Not rate limited, not in Swagger. */
@ApiExcludeController()
@SkipThrottle()
@Controller('metrics')
export class MetricsController {
  private readonly enabled: boolean;

  constructor(
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = config.get('METRICS_ENABLED', { infer: true });
  }

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  scrape(): Promise<string> {
    if (!this.enabled) throw new NotFoundException('Metrics are disabled (METRICS_ENABLED=false)');
    return this.metrics.render();
  }
}
