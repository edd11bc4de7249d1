import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { SeriesModule } from '../series/series.module.js';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { HealthController } from './health.controller.js';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), TimeseriesModule, SeriesModule],
  controllers: [HealthController],
})
export class HealthModule {}
