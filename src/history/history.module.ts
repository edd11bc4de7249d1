import { Module } from '@nestjs/common';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { CompactionService } from './compaction.service.js';
import { HistoryController } from './history.controller.js';
import { HistoryService } from './history.service.js';

@Module({
  imports: [TimeseriesModule],
  controllers: [HistoryController],
  providers: [CompactionService, HistoryService],
  exports: [CompactionService],
})
export class HistoryModule {}
