import { HttpModule } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env.validation.js';
import { SOURCE_HTTP_OPTIONS, SourceHttpClient, SourceHttpOptions } from './source-http.service.js';
import { SourceRegistry } from './source.registry.js';

/** Same-origin redirects followed per call; a redirect to another origin is never followed. */
export const MAX_SAME_ORIGIN_REDIRECTS = 3;

/** The upstream providers, their shared HTTP client, and the registry of the configured ones. */
@Module({
  imports: [HttpModule],
  providers: [
    {
      provide: SOURCE_HTTP_OPTIONS,
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>): SourceHttpOptions => ({
        timeoutMs: config.get('UPSTREAM_TIMEOUT_MS', { infer: true }),
        retries: config.get('UPSTREAM_RETRIES', { infer: true }),
        retryBaseMs: config.get('UPSTREAM_RETRY_BASE_MS', { infer: true }),
        retryAfterMaxMs: config.get('UPSTREAM_RETRY_AFTER_MAX_MS', { infer: true }),
        userAgent: config.get('UPSTREAM_USER_AGENT', { infer: true }),
        maxRedirects: MAX_SAME_ORIGIN_REDIRECTS,
        minIntervalMs: config.get('UPSTREAM_MIN_INTERVAL_MS', { infer: true }),
      }),
    },
    SourceHttpClient,
    SourceRegistry,
  ],
  exports: [SourceRegistry, SourceHttpClient],
})
export class SourcesModule {}
