import { Module } from '@nestjs/common';
import { LockModule } from '../lock/lock.module.js';
import { SeriesModule } from '../series/series.module.js';
import { SourcesModule } from '../sources/sources.module.js';
import { IngestController } from './ingest.controller.js';
import { IngestEvents } from './ingest.events.js';
import { IngestScheduler } from './ingest.scheduler.js';
import { SentimentIngestService } from './sentiment-ingest.service.js';

/** Sources → ingest → series store; readers subscribe to IngestEvents. */
@Module({
  imports: [SourcesModule, SeriesModule, LockModule],
  controllers: [IngestController],
  providers: [SentimentIngestService, IngestScheduler, IngestEvents],
  exports: [IngestEvents],
})
export class IngestModule {}
