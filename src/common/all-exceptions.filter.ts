import { STATUS_CODES } from 'node:http';
import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { isRedisUnavailableError } from '../redis/redis-errors.js';
import type { AllowedMethods } from './allowed-methods.js';
import { ErrorResponseDto } from './error-response.dto.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { RetryLaterException, TooManyRequestsException } from './errors.js';
import { LogSampler } from './log-sampler.js';

const REDIS_RETRY_AFTER_SECONDS = 5;

/** Longest error message sent; longer ones end in … (every message of our own is far shorter). */
const MAX_MESSAGE_CHARS = 1024;

/**
 * Every error response is `{statusCode, error, message, requestId}` JSON. Redis outages become a
 * 503 with Retry-After; anything unexpected a 500 whose details go to the log, never to the
 * client (no stack trace, Redis reply text or internal path).
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');
  /** One warning per 10 s while Redis is down, not one per request (each still has its access line). */
  private readonly redisDownLog = new LogSampler();

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics?: MetricsService,
    private readonly allowed?: AllowedMethods,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const { httpAdapter } = this.adapterHost;
    const ctx = host.switchToHttp();
    const response = ctx.getResponse();
    let body: ErrorResponseDto;
    let retryAfter: number | undefined;
    const request = ctx.getRequest<RoutedRequest | undefined>();
    const allow = this.allowedInstead(exception, request);

    if (allow && request) {
      // No route for this method, but the path has routes: the resource exists (RFC 9110 §15.5.6).
      const path = (request.url ?? '').split('?')[0];
      body = { statusCode: 405, error: statusText(405), message: `${request.method} is not supported on ${path}; use ${allow.join(', ')}` };
      httpAdapter.setHeader(response, 'Allow', allow.join(', '));
    } else if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const res = exception.getResponse();
      const message =
        typeof res === 'string' ? res : ((res as { message?: string | string[] }).message ?? exception.message);
      body = { statusCode: status, error: statusText(status), message };
      const details = typeof res === 'object' ? (res as { details?: Record<string, unknown> }).details : undefined;
      if (details) body.details = details;
      if (exception instanceof RetryLaterException || exception instanceof TooManyRequestsException) {
        retryAfter = exception.retryAfterSeconds;
      }
    } else if (isRedisUnavailableError(exception)) {
      const held = this.redisDownLog.take();
      if (held !== undefined) this.logger.warn(`Redis unavailable: ${(exception as Error).message}${held}`);
      this.metrics?.redisErrors.inc({ kind: 'command' });
      body = { statusCode: 503, error: statusText(503), message: 'The data store is temporarily unavailable; try again shortly' };
      retryAfter = REDIS_RETRY_AFTER_SECONDS;
    } else if (isClientError(exception)) {
      // Errors the HTTP platform raises for malformed requests (bad JSON body, too large…).
      const status = (exception as { statusCode: number }).statusCode;
      body = { statusCode: status, error: statusText(status), message: (exception as Error).message };
    } else {
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
      body = { statusCode: 500, error: statusText(500), message: 'Internal server error' };
    }
    // A message that quotes the request (a 404's or 405's path) is cut: a 15 KB path came back whole.
    if (typeof body.message === 'string' && body.message.length > MAX_MESSAGE_CHARS) body.message = `${body.message.slice(0, MAX_MESSAGE_CHARS - 1)}…`;
    const requestId = request?.id;
    if (typeof requestId === 'string') body.requestId = requestId;
    if (retryAfter !== undefined) httpAdapter.setHeader(response, 'Retry-After', String(retryAfter));
    httpAdapter.reply(response, body, body.statusCode);
  }

  /** The methods to list in Allow when `exception` is the 404 of a request no route took but its path has routes. */
  private allowedInstead(exception: unknown, request: RoutedRequest | undefined): string[] | undefined {
    if (!this.allowed || !(exception instanceof HttpException) || exception.getStatus() !== 404) return undefined;
    // A route that answers 404 itself (an unknown series) matched: only unrouted requests qualify.
    if (!request?.method || !request.url || request.routeOptions?.url !== undefined) return undefined;
    const allow = this.allowed.of(request.url);
    return allow.length > 0 && !allow.includes(request.method) ? allow : undefined;
  }
}

/** What the filter reads of a Fastify request (undefined outside HTTP). */
interface RoutedRequest {
  id?: unknown;
  method?: string;
  url?: string;
  routeOptions?: { url?: string };
}

function isClientError(err: unknown): boolean {
  const e = err as { statusCode?: unknown; message?: unknown } | null;
  // Not `instanceof Error`: an error Node itself raised (e.g. 'aborted' when a client resets
  // mid-body) comes from another realm under Jest's VM modules, and is the same client error.
  return typeof e?.message === 'string' && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500;
}

/** The reason phrase of a status (RFC 9110's, e.g. "URI Too Long"), else from Nest's HttpStatus name. */
export function statusText(status: number): string {
  const phrase = STATUS_CODES[status];
  if (phrase) return phrase;
  const name = HttpStatus[status];
  if (!name) return 'Error';
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join(' ');
}
