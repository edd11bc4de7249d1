import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { IngestModule } from '../ingest/ingest.module.js';
import { TimeseriesModule } from '../timeseries/timeseries.module.js';
import { HealthController } from './health.controller.js';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), TimeseriesModule, IngestModule],
  controllers: [HealthController],
})
export class HealthModule {}
