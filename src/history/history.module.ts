import { Module } from '@nestjs/common';
import { SeriesModule } from '../series/series.module.js';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { HistoryController } from './history.controller.js';
import { HistoryService } from './history.service.js';

@Module({
  imports: [TimeseriesModule, SeriesModule],
  controllers: [HistoryController],
  providers: [HistoryService],
})
export class HistoryModule {}
