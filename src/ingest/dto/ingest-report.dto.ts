import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsOptional } from 'class-validator';
import { ApiInteger } from '../../common/api-properties.js';

export class SeriesCountsDto {
  /** @example 2474 */
  @ApiInteger()
  stored!: number;
  /** Samples whose timestamp was already stored (DUPLICATE_POLICY FIRST kept the old value). @example 0 */
  @ApiInteger()
  duplicates!: number;
  /** Samples the server refused (e.g. older than retention). @example 0 */
  @ApiInteger()
  rejected!: number;
}

/** Samples per metric fed by a run (only the metrics its source feeds in this deployment). */
export class SeriesCountsByMetricDto {
  price?: SeriesCountsDto;
  sentiment?: SeriesCountsDto;
}

/** The history a run fetched first because the series was empty or had a gap (see docs/ingest.md "Sources"). */
export class BackfillReportDto {
  /** @example "2026-12-01T07:00:00.000Z" */
  from!: string;
  /** @example "2026-12-02T07:00:00.000Z" */
  to!: string;
  /** Upstream calls made. @example 5 */
  @ApiInteger()
  attempts!: number;
  /** Records in the upstream payloads. @example 1440 */
  @ApiInteger()
  fetched!: number;
  /** Records that failed validation. @example 0 */
  @ApiInteger()
  invalid!: number;
  /** Samples stored by the backfill (also counted in the run's totals). @example 1440 */
  @ApiInteger()
  stored!: number;
  /** @example 0 */
  @ApiInteger()
  duplicates!: number;
  /** @example 0 */
  @ApiInteger()
  rejected!: number;
  /** Why the backfill failed (the poll still ran), or null. @example null */
  error!: string | null;
}

/** What a run did: the counts shared by one source's report and POST /refresh's totals. */
export class RunCountsDto {
  /** @example "2026-12-02T07:00:00.000Z" */
  startedAt!: string;
  /** @example 41 */
  @ApiInteger()
  durationMs!: number;
  /** Upstream calls made (retries and backfill included). @example 1 */
  @ApiInteger()
  attempts!: number;
  /** Records in the upstream payload(s). @example 2474 */
  @ApiInteger()
  fetched!: number;
  /** Records newer than the stored data (all of them on the first run or with full=true) that failed validation, so were not stored. @example 0 */
  @ApiInteger()
  invalid!: number;
  /** Up to five reasons for invalid records. @example [] */
  invalidReasons!: string[];
  /** Records not newer than the latest stored sample, so not sent again (nor validated beyond their timestamp). @example 0 */
  @ApiInteger()
  skipped!: number;
  /** Samples stored. @example 4948 */
  @ApiInteger()
  stored!: number;
  /** Samples already present (DUPLICATE_POLICY FIRST kept them). @example 0 */
  @ApiInteger()
  duplicates!: number;
  /** Samples the server refused. @example 0 */
  @ApiInteger()
  rejected!: number;
  /** Per metric counts. */
  series!: SeriesCountsByMetricDto;
  /** Time of the newest stored sample after this run (UTC), or null when none. @example "2021-07-07T17:30:18.000Z" */
  latestSampleTime!: string | null;
}

/** One source's run: fetch, validate, store. */
export class SourceReportDto extends RunCountsDto {
  /** @example "coinbase" */
  source!: string;
  /** The backfill done with this run, or null when none was needed. */
  backfill!: BackfillReportDto | null;
  /**
   * The hourly part of a first backfill longer than 24 h (price venues: the hours before the
   * 1-minute window, into the compactions); only present when there was one.
   */
  hourlyBackfill?: BackfillReportDto;
}

/** How one source fared in a POST /refresh: its report, or why it failed. */
export class SourceOutcomeDto {
  /** @example "senticrypt-v2" */
  source!: string;
  /** @example true */
  ok!: boolean;
  /** Why the run failed (our own words: a status, an error code; never the upstream's content), or null. @example null */
  error!: string | null;
  report!: SourceReportDto | null;
}

/** POST /refresh: every configured source; the totals are over the sources that succeeded. */
export class IngestReportDto extends RunCountsDto {
  /** Each source's outcome; one failing never stops the others. */
  sources!: SourceOutcomeDto[];
}

export class RefreshQueryDto {
  /**
   * Re-send every valid record, not only those newer than the latest stored sample
   * (harmless: duplicates are kept as they are). Accepts true/false.
   * @example false
   */
  @ApiPropertyOptional({ default: false })
  @IsOptional()
  @Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))
  @IsBoolean({ message: 'full must be true or false' })
  full?: boolean;
}

/** POST /refresh takes its options in the query; a body may only be empty or `{}`. */
export class RefreshBodyDto {}
