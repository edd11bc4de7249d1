import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
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
        ConfigModule.forRoot({ isGlobal: true, cache: true, validate: (raw) => validateEnv({ ...raw, ...env }) }),
        LoggerModule,
        ScheduleModule.forRoot(),
        RedisModule,
        MetricsModule,
        ThrottleModule,
        SummaryModule,
        IngestModule,
        NotificationsModule,
        HealthModule,
        HistoryModule,
        DashboardModule,
      ],
    };
  }
}
