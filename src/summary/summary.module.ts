import { Module } from '@nestjs/common';
import { CacheModule } from '../cache/cache.module.js';
import { IngestModule } from '../ingest/ingest.module.js';
import { SeriesModule } from '../series/series.module.js';
import { VerdictModule } from '../verdict/verdict.module.js';
import { SummaryController } from './summary.controller.js';
import { SummaryEvents } from './summary.events.js';
import { SummaryService } from './summary.service.js';

@Module({
  imports: [SeriesModule, CacheModule, IngestModule, VerdictModule],
  controllers: [SummaryController],
  providers: [SummaryService, SummaryEvents],
  exports: [SummaryService, SummaryEvents],
})
export class SummaryModule {}
