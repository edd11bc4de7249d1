import { Transform } from 'class-transformer';
import { IsBoolean, IsOptional } from 'class-validator';

export class SeriesCountsDto {
  /** @example 2474 */
  stored!: number;
  /** Samples whose timestamp was already stored (DUPLICATE_POLICY FIRST kept the old value). @example 0 */
  duplicates!: number;
  /** Samples the server refused (e.g. older than retention). @example 0 */
  rejected!: number;
}

export class IngestReportDto {
  /** @example "2026-11-22T14:00:00.000Z" */
  startedAt!: string;
  /** @example 41 */
  durationMs!: number;
  /** Upstream calls made (1 + retries). @example 1 */
  attempts!: number;
  /** Records in the upstream payload. @example 2474 */
  fetched!: number;
  /** Records newer than the stored data (all of them on the first run or with full=true) that failed validation, so were not stored. @example 0 */
  invalid!: number;
  /** Up to five reasons for invalid records. @example [] */
  invalidReasons!: string[];
  /** Records not newer than the latest stored sample, so not sent again (nor validated beyond their timestamp). @example 0 */
  skipped!: number;
  /** Samples stored over both series. @example 4948 */
  stored!: number;
  /** Samples already present over both series. @example 0 */
  duplicates!: number;
  /** Samples the server refused over both series. @example 0 */
  rejected!: number;
  /** Per series counts. */
  series!: { price: SeriesCountsDto; sentiment: SeriesCountsDto };
  /** Time of the newest stored sample after this run (UTC), or null when none. @example "2021-07-07T17:30:18.000Z" */
  latestSampleTime!: string | null;
}

export class RefreshQueryDto {
  /**
   * Re-send every valid record, not only those newer than the latest stored sample
   * (harmless: duplicates are kept as they are). Accepts true/false.
   * @example false
   */
  @IsOptional()
  @Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))
  @IsBoolean({ message: 'full must be true or false' })
  full?: boolean;
}

/** POST /refresh takes its options in the query; a body may only be empty or `{}`. */
export class RefreshBodyDto {}
