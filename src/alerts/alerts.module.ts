import { Module } from '@nestjs/common';
import { SourcesModule } from '../sources/sources.module.js';
import { VerdictModule } from '../verdict/verdict.module.js';
import { AlertsService } from './alerts.service.js';

/** Verdict webhooks (ALERT_WEBHOOK_URLS): a delivery queue per receiver in Redis, sent through the shared HTTP client. */
@Module({
  imports: [VerdictModule, SourcesModule],
  providers: [AlertsService],
  exports: [AlertsService],
})
export class AlertsModule {}
