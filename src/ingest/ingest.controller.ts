import { BadGatewayException, Body, Controller, HttpCode, Post, Query, UseGuards } from '@nestjs/common';
import {
  ApiBadGatewayResponse,
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiForbiddenResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { IngestReportDto, RefreshBodyDto, RefreshQueryDto } from './dto/ingest-report.dto.js';
import { StrictThrottle } from '../throttle/throttle.constants.js';
import { IngestService } from './ingest.service.js';
import { RefreshTokenGuard } from './refresh-token.guard.js';
import { PayloadError } from './senticrypt-record.js';
import { PermanentUpstreamError, TransientUpstreamError } from './sentiment-source.service.js';

@ApiTags('ingest')
@Controller()
export class IngestController {
  constructor(private readonly ingest: IngestService) {}

  @Post('refresh')
  @HttpCode(200)
  @UseGuards(RefreshTokenGuard)
  @StrictThrottle()
  @ApiBearerAuth()
  @ApiOperation({
    summary: 'Ingest now',
    description:
      'Pulls the SentiCrypt feed, stores new price/sentiment samples and refreshes the cached summary. Returns what happened. A call during a scheduled run waits for that run and returns its report.',
  })
  @ApiOkResponse({ type: IngestReportDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Malformed query' })
  @ApiBadGatewayResponse({ type: ErrorResponseDto, description: 'The upstream failed or sent an unusable payload; nothing stored was changed' })
  @ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'Missing or wrong bearer token' })
  @ApiForbiddenResponse({ type: ErrorResponseDto, description: 'Disabled: REFRESH_TOKEN is not set on the server' })
  @ApiTooManyRequestsResponse({ type: ErrorResponseDto, description: 'Rate limited (THROTTLE_REFRESH_LIMIT); see Retry-After' })
  @ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'Redis is unavailable' })
  // The body is validated too (it must be empty or {}), so stray fields get a 400 naming them.
  async refresh(@Query() query: RefreshQueryDto, @Body() _body: RefreshBodyDto): Promise<IngestReportDto> {
    try {
      return await this.ingest.run({ full: query.full === true });
    } catch (err) {
      if (err instanceof PayloadError || err instanceof PermanentUpstreamError || err instanceof TransientUpstreamError) {
        throw new BadGatewayException(`Ingest failed: ${err.message}`);
      }
      throw err;
    }
  }
}
