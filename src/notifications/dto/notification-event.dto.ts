import { SourceReportDto } from '../../ingest/dto/ingest-report.dto.js';
import { SummaryResponseDto } from '../../summary/dto/summary-response.dto.js';
import type { VerdictChangedEventDto } from '../../verdict/dto/verdict.dto.js';
import { ApiInteger } from '../../common/api-properties.js';

/**
 * Sent after every ingest run of a source (on any instance) that stored at least one sample.
 * SSE: `event: ingest`; WebSocket: a text frame with this JSON.
 */
export class IngestEventDto {
  /** @example "ingest" */
  type!: 'ingest';
  /** The source that was ingested. @example "coinbase" */
  source!: string;
  /** Time of the newest stored sample of the source's series after the run (UTC). @example "2021-07-07T17:30:18.000Z" */
  latestSampleTime!: string;
  /** Samples stored by the run. @example 4948 */
  @ApiInteger()
  stored!: number;
  /** The source's report of the run, as in POST /refresh's `sources[].report`. */
  report!: SourceReportDto;
  /** The fresh GET /is-bitcoin-lit body, or null when it could not be computed. */
  summary!: SummaryResponseDto | null;
}

/** Sent every NOTIFY_HEARTBEAT_MS so clients and proxies know the stream is alive. */
export class HeartbeatEventDto {
  /** @example "heartbeat" */
  type!: 'heartbeat';
  /** Server time (UTC). @example "2026-11-22T14:00:15.000Z" */
  time!: string;
}

/**
 * Sent when this instance loses its Redis subscription (`down`: ingest events may be missed)
 * and when it is back (`up`). A client that connects while Redis is down gets `down` first.
 */
export class StatusEventDto {
  /** @example "status" */
  type!: 'status';
  /** @example "down" */
  redis!: 'down' | 'up';
}

export type NotificationEvent = IngestEventDto | VerdictChangedEventDto | HeartbeatEventDto | StatusEventDto;
