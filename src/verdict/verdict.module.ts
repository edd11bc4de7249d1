import { Module } from '@nestjs/common';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { VerdictController } from './verdict.controller.js';
import { VerdictEvents } from './verdict.events.js';
import { VerdictService } from './verdict.service.js';

/** The verdict: recorded after each ingest (by the summary), its history, its changes as events. */
@Module({
  imports: [TimeseriesModule],
  controllers: [VerdictController],
  providers: [VerdictService, VerdictEvents],
  exports: [VerdictService, VerdictEvents],
})
export class VerdictModule {}
