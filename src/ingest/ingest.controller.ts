import { BadGatewayException, BadRequestException, Body, Controller, HttpCode, type PipeTransform, Post, Query, UseGuards } from '@nestjs/common';
import {
  ApiBadGatewayResponse,
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiBody,
  ApiForbiddenResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiTags,
  ApiUnauthorizedResponse,
  ApiUnsupportedMediaTypeResponse,
} from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { IngestReportDto, RefreshBodyDto, RefreshQueryDto } from './dto/ingest-report.dto.js';
import { ApiRateLimited, StrictThrottle } from '../throttle/throttle.constants.js';
import { SourceError } from '../sources/source.errors.js';
import { RefreshTokenGuard } from './refresh-token.guard.js';
import { AllSourcesFailedError, SentimentIngestService } from './sentiment-ingest.service.js';
import { ApiUnavailable } from '../common/api-responses.js';

/**
 * After the global ValidationPipe (which refuses an object's stray fields but lets a JSON scalar
 * or a text body through untouched): anything but no body, an empty one or an object is a 400.
 */
class EmptyBodyPipe implements PipeTransform {
  transform(body: unknown): unknown {
    if (body === undefined || body === '' || (typeof body === 'object' && body !== null && !Array.isArray(body))) return body;
    throw new BadRequestException('the body must be empty or {}; options go in the query (e.g. ?full=true)');
  }
}

@ApiTags('ingest')
@Controller()
export class IngestController {
  constructor(private readonly ingest: SentimentIngestService) {}

  @Post('refresh')
  @HttpCode(200)
  @UseGuards(RefreshTokenGuard)
  @StrictThrottle()
  @ApiBearerAuth()
  @ApiOperation({
    summary: 'Ingest now',
    description:
      'Polls every configured source (PRICE_SOURCE, SENTIMENT_SOURCE) at once, backfills a source whose series are empty or have a gap, stores new samples and refreshes the cached summary. Returns what happened, per source; one source failing never stops the other (its entry in `sources` says why). A call during a scheduled run of a source waits for that run and reports it.',
  })
  @ApiOkResponse({ type: IngestReportDto })
  // Any field is refused (400), which the schema says (a DTO without properties would allow any).
  @ApiBody({ schema: { type: 'object', nullable: true, properties: {}, additionalProperties: false }, required: false, description: 'None needed: a body may only be empty, {} or null' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Malformed query, or a body other than none, {} or null (not JSON, or with a field)' })
  @ApiPayloadTooLargeResponse({ type: ErrorResponseDto, description: 'A body over 64 KiB' })
  @ApiUnsupportedMediaTypeResponse({ type: ErrorResponseDto, description: 'A body that is neither JSON nor text' })
  @ApiBadGatewayResponse({ type: ErrorResponseDto, description: 'Every source failed or sent an unusable payload; nothing stored was changed' })
  @ApiUnauthorizedResponse({
    type: ErrorResponseDto,
    description: 'Missing or wrong bearer token',
    headers: { 'WWW-Authenticate': { description: 'The scheme wanted: `Bearer`', schema: { type: 'string' } } },
  })
  @ApiForbiddenResponse({ type: ErrorResponseDto, description: 'Disabled: REFRESH_TOKEN is not set on the server' })
  @ApiRateLimited('default+refresh')
  @ApiUnavailable('Redis is unavailable')
  // The body is validated too (it must be empty or {}), so stray fields get a 400 naming them.
  async refresh(@Query() query: RefreshQueryDto, @Body(EmptyBodyPipe) _body: RefreshBodyDto): Promise<IngestReportDto> {
    try {
      // An operator's request: a failed backfill is retried now, whenever its next retry was due.
      return await this.ingest.runAll({ full: query.full === true, retryNow: true });
    } catch (err) {
      // Every upstream failure, and a source skipped because its upstream asked to wait.
      if (err instanceof SourceError || err instanceof AllSourcesFailedError) {
        throw new BadGatewayException(`Ingest failed: ${err.message}`);
      }
      throw err;
    }
  }
}
