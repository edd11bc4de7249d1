import { Module } from '@nestjs/common';
import { SourcesModule } from '../sources/sources.module.js';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { CompactionService } from './compaction.service.js';
import { SeriesRepository } from './series.repository.js';

@Module({
  imports: [TimeseriesModule, SourcesModule],
  providers: [CompactionService, SeriesRepository],
  exports: [SeriesRepository, CompactionService],
})
export class SeriesModule {}
