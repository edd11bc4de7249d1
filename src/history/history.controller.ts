import { BadRequestException, Controller, Get, Param, Query, Res } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { NoQueryDto } from '../common/no-query.dto.js';
import { METRIC_NAMES, MetricName } from '../sources/source.types.js';
import { SeriesInfoDto } from './dto/series-info.dto.js';
import { CombinedPointDto, SeriesPointDto } from './dto/series-point.dto.js';
import { MetricSeriesQueryDto, SeriesQueryDto } from './dto/series-query.dto.js';
import { HistoryService } from './history.service.js';
import { ApiRateLimited } from '../throttle/throttle.constants.js';
import { ApiUnavailable } from '../common/api-responses.js';

const SOURCE_HEADER = {
  'X-Series-Source': {
    description:
      'How the answer was computed: the compaction tiers used, coarsest first, and raw for cut edges and the open bucket (e.g. 1d+1h+raw, 5m+raw, or raw); for a composite price, each venue\'s: median(coinbase:1h+raw kraken:1h+raw bitstamp:raw)',
    schema: { type: 'string' },
  },
};

/** /series/combined: each metric's X-Series-Source, named. */
const COMBINED_SOURCE_HEADER = {
  'X-Series-Source': {
    description: 'How each metric was computed, as GET /series/{metric} says it: price=<its X-Series-Source>, sentiment=<its> (e.g. price=1h+raw, sentiment=1d+raw)',
    schema: { type: 'string' },
  },
};

const RANGE_LIMITS =
  'bad parameter, inverted range, more than SERIES_MAX_POINTS buckets, or a range longer than SERIES_MAX_RAW_SPAN_MS for a query computed from raw samples (std.*, var.*, twa, a bucket no compaction tier divides)';
const BUSY = 'Redis is unavailable, or too many long raw-sample queries are running on this instance';

@ApiTags('history')
@ApiRateLimited()
@ApiExtraModels(SeriesPointDto)
@Controller('series')
export class HistoryController {
  constructor(private readonly history: HistoryService) {}

  @Get()
  @ApiOperation({
    summary: 'List the series',
    description: 'The raw series (sentiment\'s, and one per price venue, labelled with its source) and their hourly/daily compactions, with labels, retention, compaction rules, first/last timestamps and sample counts (TS.INFO).',
  })
  @ApiOkResponse({ type: [SeriesInfoDto] })
  @ApiUnavailable('Redis is unavailable')
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Any query parameter (the endpoint takes none)' })
  list(@Query() _query: NoQueryDto): Promise<SeriesInfoDto[]> {
    return this.history.list();
  }

  @Get('combined')
  @ApiOperation({
    summary: 'Price and sentiment history, aligned by bucket',
    description: 'Both metrics over the same buckets (see GET /series/{metric}; price is the composite when PRICE_SOURCE names several venues); a metric without samples in a bucket is null.',
  })
  @ApiOkResponse({ type: [CombinedPointDto], headers: COMBINED_SOURCE_HEADER })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: `A ${RANGE_LIMITS}` })
  @ApiUnavailable(BUSY)
  async combined(@Query() query: SeriesQueryDto, @Res({ passthrough: true }) reply: FastifyReply): Promise<CombinedPointDto[]> {
    const q = await this.history.resolve(query);
    const [price, sentiment] = await Promise.all([this.history.series('price', q), this.history.series('sentiment', q)]);
    reply.header('X-Series-Source', `price=${price.source}, sentiment=${sentiment.source}`);
    const rows = new Map<number, CombinedPointDto>();
    const row = (t: number) => rows.get(t) ?? rows.set(t, { time: new Date(t).toISOString(), price: null, sentiment: null }).get(t)!;
    for (const s of price.samples) row(s.timestamp).price = s.value;
    for (const s of sentiment.samples) row(s.timestamp).sentiment = s.value;
    return [...rows.entries()].sort(([a], [b]) => a - b).map(([, r]) => r);
  }

  @Get(':metric')
  @ApiOperation({
    summary: 'History of one metric',
    description:
      'Epoch-aligned buckets over [from, to] with a RedisTimeSeries aggregation, oldest first, empty buckets left out: the answer TS.RANGE … AGGREGATION gives on the raw series. Long ranges are read from the hourly/daily compactions where those hold the exact answer (sum, count, min, max, first, last, range, and avg as sum/count), and from the raw series for the rest. Price from several venues (PRICE_SOURCE a list) is their composite: each venue\'s buckets with the same aggregation, then per bucket the median across the venues that have one, a price level (avg, min, max, first, last, twa) more than PRICE_OUTLIER_PCT from the other venues\' median left out; `source` picks one venue.',
  })
  @ApiParam({ name: 'metric', enum: METRIC_NAMES })
  @ApiOkResponse({ type: [SeriesPointDto], headers: SOURCE_HEADER })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: `Unknown metric, unknown or unconfigured source, ${RANGE_LIMITS}` })
  @ApiUnavailable(BUSY)
  async metric(
    @Param('metric') metric: string,
    @Query() query: MetricSeriesQueryDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SeriesPointDto[]> {
    if (!(METRIC_NAMES as readonly string[]).includes(metric)) {
      throw new BadRequestException(`metric must be one of: ${METRIC_NAMES.join(', ')} (got "${metric}")`);
    }
    const result = await this.history.series(metric as MetricName, await this.history.resolve(query, metric as MetricName), query.source);
    reply.header('X-Series-Source', result.source);
    return result.samples.map((s) => ({ time: new Date(s.timestamp).toISOString(), value: s.value }));
  }
}
