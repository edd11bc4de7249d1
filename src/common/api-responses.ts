import { ApiServiceUnavailableResponse } from '@nestjs/swagger';
import { ErrorResponseDto } from './error-response.dto.js';

/** The Retry-After header of a documented 429 or 503 (AllExceptionsFilter sends it on both). */
export const RETRY_AFTER_HEADER = { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } } };

/** A documented 503 in the API's error shape: every such answer (a Redis outage, a full queue) carries Retry-After. */
export const ApiUnavailable = (description: string) => ApiServiceUnavailableResponse({ type: ErrorResponseDto, description, headers: RETRY_AFTER_HEADER });
