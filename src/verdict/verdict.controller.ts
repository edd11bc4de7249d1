import { Controller, Get, Query } from '@nestjs/common';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { NoQueryDto } from '../common/no-query.dto.js';
import { VerdictPointDto, VerdictSeriesQueryDto, VerdictStateDto } from './dto/verdict.dto.js';
import { VerdictService } from './verdict.service.js';
import { ApiRateLimited } from '../throttle/throttle.constants.js';
import { ApiUnavailable } from '../common/api-responses.js';

@ApiTags('verdict')
@ApiRateLimited()
@Controller()
export class VerdictController {
  constructor(private readonly verdicts: VerdictService) {}

  @Get('verdict')
  @ApiOperation({
    summary: 'The current verdict, since when, and the last changes',
    description:
      'As recorded after the latest ingest run by any instance (the rule is documented with GET /is-bitcoin-lit `verdict`). `changes` lists the last 20 transitions, newest first; each was sent once as a `verdict.changed` event and to the webhooks.',
  })
  @ApiOkResponse({ type: VerdictStateDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Any query parameter (the endpoint takes none)' })
  @ApiUnavailable('Redis is unavailable')
  state(@Query() _query: NoQueryDto): Promise<VerdictStateDto> {
    return this.verdicts.state();
  }

  @Get('series/verdict')
  @ApiOperation({
    summary: 'History of the verdict',
    description:
      'The verdict evaluated after each ingest run, stored as a series (lit 1, mixed 0, cold -1, unknown 2) at the `as_of` of the summary it was evaluated on. Per epoch-aligned bucket over [from, to], the last verdict evaluated in it (TS.RANGE … AGGREGATION last), oldest first; a bucket without an evaluation is left out. from, to, bucket and their defaults are those of GET /series/{metric}; there is no aggregation parameter. With bucket=1h over a month, counting the `lit` hours answers how long it was lit.',
  })
  @ApiOkResponse({ type: [VerdictPointDto] })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Bad parameter, inverted range, more than SERIES_MAX_POINTS buckets, or a range longer than SERIES_MAX_RAW_SPAN_MS' })
  @ApiUnavailable('Redis is unavailable, or too many long history queries are running on this instance')
  history(@Query() query: VerdictSeriesQueryDto): Promise<VerdictPointDto[]> {
    return this.verdicts.history(query);
  }
}
