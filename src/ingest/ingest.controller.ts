import { BadGatewayException, Controller, HttpCode, Post, Query } from '@nestjs/common';
import { ApiBadGatewayResponse, ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { IngestReportDto, RefreshQueryDto } from './dto/ingest-report.dto.js';
import { IngestService } from './ingest.service.js';
import { PayloadError } from './senticrypt-record.js';
import { PermanentUpstreamError, TransientUpstreamError } from './sentiment-source.service.js';

@ApiTags('ingest')
@Controller()
export class IngestController {
  constructor(private readonly ingest: IngestService) {}

  @Post('refresh')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Ingest now',
    description:
      'Pulls the SentiCrypt feed, stores new price/sentiment samples and refreshes the cached summary. Returns what happened. A call during a scheduled run waits for that run and returns its report.',
  })
  @ApiOkResponse({ type: IngestReportDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Malformed query' })
  @ApiBadGatewayResponse({ type: ErrorResponseDto, description: 'The upstream failed or sent an unusable payload; nothing stored was changed' })
  @ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'Redis is unavailable' })
  async refresh(@Query() query: RefreshQueryDto): Promise<IngestReportDto> {
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
