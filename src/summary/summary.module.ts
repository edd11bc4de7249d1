import { Module } from '@nestjs/common';
import { CacheModule } from '../cache/cache.module.js';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { SummaryController } from './summary.controller.js';
import { SummaryService } from './summary.service.js';

@Module({
  imports: [TimeseriesModule, CacheModule],
  controllers: [SummaryController],
  providers: [SummaryService],
  exports: [SummaryService],
})
export class SummaryModule {}
