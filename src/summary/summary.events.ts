import { Injectable, Logger } from '@nestjs/common';
import { AsyncEvents } from '../common/async-events.js';
import type { SourceIngestedEvent } from '../ingest/ingest.events.js';
import type { SummaryResponseDto } from './dto/summary-response.dto.js';

/** The summary was recomputed after an ingest run (null when it could not be). */
export interface SummaryRefreshedEvent {
  summary: SummaryResponseDto | null;
  cause: SourceIngestedEvent;
}

@Injectable()
export class SummaryEvents extends AsyncEvents<SummaryRefreshedEvent> {
  constructor() {
    super(new Logger(SummaryEvents.name));
  }
}
