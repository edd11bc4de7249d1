import { HttpModule } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { LockModule } from '../lock/lock.module.js';
import { NotificationsModule } from '../notifications/notifications.module.js';
import { HistoryModule } from '../history/history.module.js';
import { SummaryModule } from '../summary/summary.module.js';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { IngestController } from './ingest.controller.js';
import { IngestScheduler } from './ingest.scheduler.js';
import { IngestService } from './ingest.service.js';
import { SentimentSourceService } from './sentiment-source.service.js';

@Module({
  imports: [HttpModule, TimeseriesModule, SummaryModule, NotificationsModule, HistoryModule, LockModule],
  controllers: [IngestController],
  providers: [SentimentSourceService, IngestService, IngestScheduler],
  exports: [IngestService],
})
export class IngestModule {}
