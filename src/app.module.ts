import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
import { AlertsModule } from './alerts/alerts.module.js';
import { LoggerModule } from './common/logger.module.js';
import { validateEnv } from './config/env.validation.js';
import { HealthModule } from './health/health.module.js';
import { DashboardModule } from './dashboard/dashboard.module.js';
import { HistoryModule } from './history/history.module.js';
import { IngestModule } from './ingest/ingest.module.js';
import { NotificationsModule } from './notifications/notifications.module.js';
import { RedisModule } from './redis/redis.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { SummaryModule } from './summary/summary.module.js';
import { ThrottleModule } from './throttle/throttle.module.js';
import { VerdictModule } from './verdict/verdict.module.js';

@Module({})
export class AppModule {
  /**
   * `env` overrides process.env / .env (tests boot several differently configured apps in one
   * process); everything is validated once, at startup.
   */
  static forRoot(env: Record<string, string> = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        withoutEnvLeak(() => ConfigModule.forRoot({ isGlobal: true, cache: true, validate: (raw) => validateEnv({ ...raw, ...env }) })),
        LoggerModule,
        ScheduleModule.forRoot(),
        RedisModule,
        MetricsModule,
        ThrottleModule,
        SummaryModule,
        IngestModule,
        NotificationsModule,
        VerdictModule,
        AlertsModule,
        HealthModule,
        HistoryModule,
        DashboardModule,
      ],
    };
  }
}

/**
 * ConfigModule copies every validated setting, defaults and `env` overrides included, into
 * process.env. Another app booted later in this process (the tests boot several) would then
 * take those as explicitly set, e.g. PRICE_SOURCE=coinbase defeating the SENTIMENT_API_URL-only
 * upgrade path. The service reads its settings from ConfigService, never from process.env, so
 * what ConfigModule added is taken back out.
 */
async function withoutEnvLeak<T>(load: () => Promise<T>): Promise<T> {
  const before = new Set(Object.keys(process.env));
  try {
    return await load();
  } finally {
    for (const key of Object.keys(process.env)) if (!before.has(key)) delete process.env[key];
  }
}
