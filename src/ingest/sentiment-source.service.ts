import { HttpService } from '@nestjs/axios';
import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AxiosError } from 'axios';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { firstValueFrom } from 'rxjs';
import { Env } from '../config/env.validation.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { PayloadError } from './senticrypt-record.js';

/** An upstream failure worth retrying (network, timeout, 5xx, 429). */
export class TransientUpstreamError extends Error {
  override readonly name = 'TransientUpstreamError';
}
/** An upstream failure that a retry will not fix (4xx, not JSON, too large). */
export class PermanentUpstreamError extends Error {
  override readonly name = 'PermanentUpstreamError';
}

export interface FetchResult {
  payload: unknown;
  attempts: number;
}

/**
 * Fetches the SentiCrypt v1 feed: http(s) through @nestjs/axios with a per-call timeout and
 * retries with exponential backoff + jitter for transient errors only; file:// for replays.
 */
@Injectable()
export class SentimentSourceService {
  private readonly logger = new Logger(SentimentSourceService.name);
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly maxBytes: number;

  constructor(
    private readonly http: HttpService,
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.url = config.get('SENTIMENT_API_URL', { infer: true });
    this.timeoutMs = config.get('SENTIMENT_API_TIMEOUT_MS', { infer: true });
    this.retries = config.get('SENTIMENT_API_RETRIES', { infer: true });
    this.retryBaseMs = config.get('SENTIMENT_API_RETRY_BASE_MS', { infer: true });
    this.maxBytes = config.get('SENTIMENT_API_MAX_BYTES', { infer: true });
  }

  async fetch(): Promise<FetchResult> {
    for (let attempt = 1; ; attempt++) {
      const timer = this.metrics.upstreamDuration.startTimer();
      try {
        const text = await this.fetchText();
        const payload = decodeJson(text);
        timer({ outcome: 'ok' });
        return { payload, attempts: attempt };
      } catch (err) {
        timer({ outcome: err instanceof TransientUpstreamError ? 'transient_error' : 'permanent_error' });
        if (!(err instanceof TransientUpstreamError) || attempt > this.retries) {
          if (err instanceof Error) err.message = `${err.message} (attempt ${attempt} of ${this.retries + 1})`;
          throw err;
        }
        const delay = backoff(attempt, this.retryBaseMs);
        this.logger.warn(`Upstream attempt ${attempt} failed (${err.message}); retrying in ${delay} ms`);
        await sleep(delay);
      }
    }
  }

  private async fetchText(): Promise<string> {
    if (this.url.startsWith('file://')) {
      try {
        return await readFile(fileURLToPath(this.url), 'utf8');
      } catch (err) {
        throw new PermanentUpstreamError(`cannot read ${this.url}: ${(err as Error).message}`);
      }
    }
    try {
      const res = await firstValueFrom(
        this.http.get<string>(this.url, {
          timeout: this.timeoutMs,
          signal: AbortSignal.timeout(this.timeoutMs),
          responseType: 'text',
          transformResponse: (d: unknown) => d, // keep the raw text; we decode and report ourselves
          maxContentLength: this.maxBytes,
          headers: { Accept: 'application/json' },
        }),
      );
      return typeof res.data === 'string' ? res.data : String(res.data);
    } catch (err) {
      throw classify(err as AxiosError);
    }
  }
}

function classify(err: AxiosError): Error {
  const status = err.response?.status;
  if (status !== undefined) {
    const msg = `upstream answered HTTP ${status}`;
    return status >= 500 || status === 429 || status === 408 ? new TransientUpstreamError(msg) : new PermanentUpstreamError(msg);
  }
  if (/maxContentLength/i.test(err.message)) return new PermanentUpstreamError('upstream payload is too large');
  if (err.code === 'ECONNABORTED' || err.code === 'ERR_CANCELED' || /timeout|aborted/i.test(err.message)) {
    return new TransientUpstreamError('upstream timed out');
  }
  return new TransientUpstreamError(`upstream unreachable (${err.code ?? err.message})`);
}

function decodeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new PayloadError(`upstream payload is not JSON (starts with ${JSON.stringify(text.slice(0, 40))})`);
  }
}

function backoff(attempt: number, baseMs: number): number {
  const exp = baseMs * 2 ** (attempt - 1);
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
