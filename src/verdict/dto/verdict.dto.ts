import { ApiProperty } from '@nestjs/swagger';
import { RangeQueryDto } from '../../history/dto/series-query.dto.js';
import { nullableEnum } from '../../common/api-properties.js';
import { SummaryResponseDto } from '../../summary/dto/summary-response.dto.js';
import { VERDICTS, type Verdict } from '../verdict.rule.js';

/**
 * Sent once (whichever instance made the transition) when the verdict of the summary evaluated
 * after an ingest run differs from the previous one. SSE: `event: verdict.changed`; WebSocket:
 * a text frame with this JSON; webhooks: the POST body.
 */
export class VerdictChangedEventDto {
  /** @example "verdict.changed" */
  type!: 'verdict.changed';
  /** Unique id of this change: the webhook `Idempotency-Key`. @example "8a6f0c1e-3b0f-4a53-9d7e-2f0c0d6b9a41" */
  id!: string;
  /** The verdict before. @example "lit" */
  @ApiProperty({ enum: VERDICTS })
  previous!: Verdict;
  /** The verdict now. @example "cold" */
  @ApiProperty({ enum: VERDICTS })
  verdict!: Verdict;
  /** Start of the new verdict: the `as_of` of the summary that caused it (UTC). @example "2026-12-02T17:12:04.311Z" */
  since!: string;
  /** The GET /is-bitcoin-lit body that caused the change (its `verdict` and `verdict_since` are the new ones). */
  summary!: SummaryResponseDto;
}

export class VerdictChangeDto {
  /** The change's event id. @example "8a6f0c1e-3b0f-4a53-9d7e-2f0c0d6b9a41" */
  id!: string;
  /** When the new verdict started (the summary's `as_of`, UTC). @example "2026-12-02T17:12:04.311Z" */
  time!: string;
  /** @example "lit" */
  @ApiProperty({ enum: VERDICTS })
  previous!: Verdict;
  /** @example "cold" */
  @ApiProperty({ enum: VERDICTS })
  verdict!: Verdict;
}

export class VerdictStateDto {
  /**
   * The verdict of the newest evaluation (see GET /is-bitcoin-lit `verdict` for the rule); null
   * before the first one.
   * @example "cold"
   */
  @nullableEnum(VERDICTS)
  verdict!: Verdict | null;
  /** Start of its current run (UTC), or null. @example "2026-12-02T17:12:04.311Z" */
  since!: string | null;
  /** `as_of` of the newest evaluation (UTC), or null. @example "2026-12-02T18:40:00.000Z" */
  evaluated_as_of!: string | null;
  /** The last changes, newest first (at most 20). */
  changes!: VerdictChangeDto[];
}

export class VerdictPointDto {
  /** Start of the bucket (UTC, ISO-8601). @example "2026-12-02T17:00:00.000Z" */
  time!: string;
  /** The last verdict evaluated in the bucket. @example "lit" */
  @ApiProperty({ enum: VERDICTS })
  verdict!: Verdict;
}

/** GET /series/verdict: the same from / to / bucket as GET /series/{metric}; no aggregation (always `last`). */
export class VerdictSeriesQueryDto extends RangeQueryDto {}
