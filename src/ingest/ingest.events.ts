import { Injectable, Logger } from '@nestjs/common';
import { AsyncEvents } from '../common/async-events.js';
import type { SourceId } from '../sources/source.types.js';
import type { SourceReportDto } from './dto/ingest-report.dto.js';

/** Emitted after each successful run of one source (stored or not): readers refresh from the series. */
export interface SourceIngestedEvent {
  source: SourceId;
  report: SourceReportDto;
}

/** The ingest feature's public event: what readers (summary, health…) subscribe to. */
@Injectable()
export class IngestEvents extends AsyncEvents<SourceIngestedEvent> {
  constructor() {
    super(new Logger(IngestEvents.name));
  }
}
