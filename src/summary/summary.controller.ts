import { Controller, Get, Query, UseInterceptors } from '@nestjs/common';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { CacheKey } from '../cache/cache.constants.js';
import { ServeFromMemory } from '../cache/cache.fast-path.js';
import { CacheInterceptor } from '../cache/cache.interceptor.js';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { NoQueryDto } from '../common/no-query.dto.js';
import { SummaryResponseDto } from './dto/summary-response.dto.js';
import { SummaryService } from './summary.service.js';
import { RETRY_AFTER_HEADER } from '../common/api-responses.js';

/** The summary's path (the original app's): answered from memory ahead of Fastify on a hit. */
export const SUMMARY_PATH = 'is-bitcoin-lit';

@ApiTags('summary')
@Controller()
@UseInterceptors(CacheInterceptor)
export class SummaryController {
  constructor(private readonly summary: SummaryService) {}

  @Get(SUMMARY_PATH)
  @CacheKey('') // the bare `<prefix>:cache` key, as in the original app
  @ServeFromMemory() // public route: hits may be answered before Nest's pipeline; not rate limited
  @ApiOperation({
    summary: 'Is Bitcoin lit?',
    description:
      'Hourly averages of BTC price and sentiment for the last SUMMARY_HOURS hours (epoch-aligned UTC hours ending now; at the newest sample for the frozen SentiCrypt v1 feed), and whether each is rising, falling or flat (last hour vs first; a composite price over the venues that have both hours; a daily index against its previous day). For a daily sentiment index, each hour has the level in effect during it. `metrics` says where each metric comes from, its newest sample and whether it is stale; a metric without data is null in the hours and its direction, and the other is still served. 503 only when neither has data in the window. Served from a Redis cache shared by all instances, recomputed after every ingest run (and from memory for up to CACHE_L1_TTL_MS). Not rate limited: every request gets the same cached answer, at no Redis cost per request, so THROTTLE_LIMIT does not apply and no X-RateLimit-* headers are sent.',
  })
  @ApiOkResponse({
    type: SummaryResponseDto,
    headers: {
      'X-Cache': {
        description: 'HIT when served from the Redis cache, MISS when computed, STALE when Redis is unavailable and the last good summary of this instance is served',
        schema: { type: 'string', enum: ['HIT', 'MISS', 'STALE'] },
      },
      Age: { description: 'Seconds since the summary was computed (on HIT and STALE)', schema: { type: 'integer' } },
    },
  })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Any query parameter (the endpoint takes none)' })
  @ApiServiceUnavailableResponse({
    type: ErrorResponseDto,
    description: 'No data yet, or Redis is unavailable',
    headers: RETRY_AFTER_HEADER,
  })
  // The query is validated (and must be empty) so a typo gets a 400 naming the field.
  isBitcoinLit(@Query() _query: NoQueryDto): Promise<SummaryResponseDto> {
    return this.summary.compute();
  }
}
