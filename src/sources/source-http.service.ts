import { HttpService } from '@nestjs/axios';
import { Inject, Injectable, Logger, OnModuleDestroy, Optional } from '@nestjs/common';
import { AxiosError, AxiosResponse } from 'axios';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { MetricsService } from '../metrics/metrics.service.js';
import { jsonSizeProblem } from '../common/json-bounds.js';
import { PayloadError, PermanentUpstreamError, SourceError, TransientUpstreamError } from './source.errors.js';
import type { SourceId } from './source.types.js';

export const SOURCE_HTTP_OPTIONS = Symbol('SOURCE_HTTP_OPTIONS');

export interface SourceHttpOptions {
  /** Per-call timeout (ms): connect, redirects and the whole body. */
  timeoutMs: number;
  /** Retries of a transient failure. */
  retries: number;
  /** First backoff delay (ms), doubled per retry, with jitter. */
  retryBaseMs: number;
  /** Longest `Retry-After` (ms) the client waits; an upstream asking for more fails the run. */
  retryAfterMaxMs: number;
  /** Sent on every call. */
  userAgent: string;
  /** Same-origin redirects followed per call. */
  maxRedirects: number;
  /**
   * UPSTREAM_MIN_INTERVAL_MS: when set, the spacing of every paced provider's calls instead of
   * its own published-limit spacing (a mirror with other limits; tests, which shorten it).
   */
  minIntervalMs?: number;
}

/** Calls of one provider (a lane) start at least minIntervalMs apart, retries included. */
export interface Pacing {
  lane: string;
  minIntervalMs: number;
}

export interface GetJsonOptions {
  /** The source calling, for the upstream_request_duration_seconds label (`unknown` if not given). */
  source?: SourceId;
  /** Largest body accepted (bytes, after decompression). */
  maxBytes: number;
  /** Allow file:// URLs (SentiCrypt v1 replays). */
  allowFile?: boolean;
  /** Keep this provider under its published rate limit (see Pacing). */
  pacing?: Pacing;
}

export interface PostOptions {
  /** Request headers besides User-Agent (Content-Type, a signature…). */
  headers: Record<string, string>;
  /** Timeout of this call (ms) when it is not the client's (UPSTREAM_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Aborts the call (e.g. on shutdown); it then fails as transient. */
  signal?: AbortSignal;
}

export interface FetchedJson {
  data: unknown;
  /** HTTP calls made, retries included. */
  attempts: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The one HTTP client every source uses (through @nestjs/axios): a timeout per call, retries
 * with exponential backoff and jitter for transient failures only (network, timeout, 5xx, 408,
 * 429; a 429's or 503's `Retry-After` lengthens the wait), a descriptive User-Agent, a size cap, same-origin redirects only,
 * and error messages that never quote what the upstream sent. file:// URLs read a replay.
 * On shutdown every GET in flight is aborted and none is retried or started (see onModuleDestroy).
 */
@Injectable()
export class SourceHttpClient implements OnModuleDestroy {
  private readonly logger = new Logger(SourceHttpClient.name);
  /** Per lane: when its latest call ended (resolves once it has). */
  private readonly lanes = new Map<string, Promise<number>>();
  /** Aborted when the application shuts down. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly http: HttpService,
    @Inject(SOURCE_HTTP_OPTIONS) readonly options: SourceHttpOptions,
    @Optional() private readonly metrics?: MetricsService,
  ) {}

  /**
   * Nest's first shutdown hook, before the ingest scheduler waits for its runs: one run may
   * otherwise take UPSTREAM_RETRIES + 1 timeouts plus backoff (~31 s by default), longer than
   * SHUTDOWN_TIMEOUT_MS. A run cut short fails as transient; the next one, here or on another
   * instance, fetches again. Webhooks (post) have their own signal.
   */
  onModuleDestroy(): void {
    this.stopping.abort();
  }

  /** GET `url` and decode it as JSON. Throws a SourceError subclass with `attempts` set. */
  async getJson(url: string, options: GetJsonOptions): Promise<FetchedJson> {
    const total = this.options.retries + 1;
    for (let attempt = 1; ; attempt++) {
      let release: (() => void) | undefined;
      let timer: ((labels: { outcome: string }) => number) | undefined;
      let error: SourceError;
      try {
        if (options.pacing) release = await this.pace(options.pacing);
        timer = this.metrics?.upstreamDuration.startTimer({ source: options.source ?? 'unknown' });
        const data = decodeJson(await this.fetchText(url, options));
        timer?.({ outcome: 'ok' });
        return { data, attempts: attempt };
      } catch (err) {
        if (this.stopping.signal.aborted) error = shuttingDown();
        else error = err instanceof SourceError ? err : new TransientUpstreamError(`upstream call failed (${(err as Error).name})`);
      } finally {
        release?.();
      }
      timer?.({ outcome: error instanceof TransientUpstreamError ? 'transient_error' : 'permanent_error' });
      const delay = error instanceof TransientUpstreamError && attempt < total && !this.stopping.signal.aborted ? this.retryDelay(error, attempt) : null;
      if (typeof delay === 'number') {
        this.logger.warn(`Upstream attempt ${attempt} of ${options.source ?? 'a source'} failed (${error.message}); retrying in ${delay} ms`);
        if (await this.sleep(delay)) continue;
        error = shuttingDown();
      }
      error.message = `${error.message}${typeof delay === 'string' ? `; ${delay}` : ''} (attempt ${attempt} of ${total})`;
      error.attempts = attempt;
      throw error;
    }
  }

  /** Waits `ms`; false when shutdown cut the wait short. */
  private async sleep(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.stopping.signal });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * One POST of `body`, for outbound notifications (webhooks): no retry here (the caller keeps
   * its own, persistent, schedule) and no redirect followed, whatever its origin (a receiver
   * that moved must be reconfigured, not guessed). Resolves with the status of a 2xx; throws a
   * TransientUpstreamError (network, timeout, 5xx, 408, 429 with its Retry-After) or a
   * PermanentUpstreamError (any other status, a redirect), never quoting the response.
   * The response body is never read: the status decides, so a large answer (an error page, a
   * chatty 200) can neither turn a delivered 2xx into a failure nor a 5xx into a refusal.
   */
  async post(url: string, body: string, options: PostOptions): Promise<{ status: number }> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs;
    const limit = deadline(timeoutMs, options.signal);
    let res: AxiosResponse<Readable>;
    try {
      res = await this.http.axiosRef.request<Readable>({
        url,
        method: 'POST',
        data: body,
        // Exactly these bytes (a signature covers them): axios's default would trim a JSON
        // string, and JSON.stringify any other string sent as application/json.
        transformRequest: [(data: string) => data],
        timeout: timeoutMs,
        signal: limit.signal,
        responseType: 'stream', // resolves with the status and headers; the body stays unread
        decompress: false,
        maxRedirects: 0,
        validateStatus: () => true,
        headers: { ...options.headers, 'User-Agent': this.options.userAgent },
      });
    } catch (err) {
      throw classify(err, 0, 'receiver');
    } finally {
      limit.done();
    }
    res.data.destroy();
    const status = res.status;
    if (status >= 200 && status < 300) return { status };
    if (status >= 300 && status < 400) throw new PermanentUpstreamError(`receiver answered HTTP ${status} (a redirect); not followed`);
    const msg = `receiver answered HTTP ${status}`;
    if (isTransientStatus(status)) {
      throw new TransientUpstreamError(msg, { retryAfterMs: retryAfterOf(res, status) });
    }
    throw new PermanentUpstreamError(msg);
  }

  /**
   * Waits until `minIntervalMs` after the lane's previous call ended; returns the function that
   * ends this one. Counted from the end (the answer), so the upstream sees its calls at least
   * that far apart whatever the network delays; callers queue in order, so a poll and a
   * backfill of one provider, or several runs at once, are spaced all the same. Per process:
   * across instances the source's lease already lets one instance call it at a time.
   */
  private async pace({ lane, minIntervalMs }: Pacing): Promise<() => void> {
    const interval = this.options.minIntervalMs ?? minIntervalMs;
    if (interval <= 0) return () => undefined;
    const previous = this.lanes.get(lane) ?? Promise.resolve(-Infinity);
    let end!: (at: number) => void;
    this.lanes.set(lane, new Promise<number>((resolve) => (end = resolve)));
    const wait = (await previous) + interval - Date.now();
    // Cut short by shutdown: the call is not made (getJson sees the signal), and the lane ends
    // here, or every later caller would wait for it forever.
    if (wait > 0 && !(await this.sleep(wait))) {
      end(Date.now());
      throw shuttingDown();
    }
    return () => end(Date.now());
  }

  /**
   * Delay before the next attempt, or why there is none (Retry-After beyond the cap). Retry-After
   * lengthens the backoff, never shortens it: a `0` (or a date gone by) answering every attempt
   * had the calls follow each other within milliseconds.
   */
  private retryDelay(error: TransientUpstreamError, attempt: number): number | string {
    const delay = backoff(attempt, this.options.retryBaseMs);
    if (error.retryAfterMs === undefined) return delay;
    if (error.retryAfterMs > this.options.retryAfterMaxMs) {
      return `not retried: Retry-After ${Math.ceil(error.retryAfterMs / 1000)} s is longer than the ${this.options.retryAfterMaxMs} ms UPSTREAM_RETRY_AFTER_MAX_MS allows`;
    }
    return Math.max(delay, error.retryAfterMs);
  }

  private async fetchText(url: string, options: GetJsonOptions): Promise<string> {
    if (url.startsWith('file://')) {
      if (!options.allowFile) throw new PermanentUpstreamError('file:// URLs are not allowed for this source');
      return readCapped(url, options.maxBytes);
    }
    // One budget for the call, redirects and body included; shutdown aborts it at once.
    const limit = deadline(this.options.timeoutMs, this.stopping.signal);
    try {
      return await this.fetchWithin(url, options, limit.signal);
    } finally {
      limit.done();
    }
  }

  private async fetchWithin(url: string, options: GetJsonOptions, signal: AbortSignal): Promise<string> {
    const origin = new URL(url).origin;
    let current = url;
    for (let hop = 0; ; hop++) {
      let res: AxiosResponse<Readable>;
      try {
        res = await this.http.axiosRef.request<Readable>({
          url: current,
          method: 'GET',
          timeout: this.options.timeoutMs,
          signal,
          // Resolves with the status and headers: the status decides before any body is read,
          // so an error page too large or not decompressing is still the 429/503 it is.
          responseType: 'stream',
          maxContentLength: options.maxBytes, // enforced by axios on the (decompressed) stream
          maxRedirects: 0, // redirects are ours to judge (same origin only)
          validateStatus: () => true,
          headers: { Accept: 'application/json', 'User-Agent': this.options.userAgent },
        });
      } catch (err) {
        throw classify(err, options.maxBytes);
      }
      const status = res.status;
      if (status >= 200 && status < 300) {
        try {
          return await readText(res.data);
        } catch (err) {
          throw classify(err, options.maxBytes);
        }
      }
      res.data.destroy(); // a redirect's or an error's body is never read
      if (REDIRECTS.has(status)) {
        current = this.redirectTarget(res, status, current, origin, hop);
        continue;
      }
      const msg = `upstream answered HTTP ${status}`;
      if (isTransientStatus(status)) {
        throw new TransientUpstreamError(msg, { retryAfterMs: retryAfterOf(res, status) });
      }
      throw new PermanentUpstreamError(msg);
    }
  }

  private redirectTarget(res: AxiosResponse<unknown>, status: number, current: string, origin: string, hop: number): string {
    const location = header(res, 'location');
    if (location === undefined) throw new PermanentUpstreamError(`upstream answered HTTP ${status} without a Location`);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new PermanentUpstreamError(`upstream answered HTTP ${status} with an invalid Location`);
    }
    if (next.origin !== origin) {
      // Named only when it is an http(s) origin, whose host the URL parser has reduced to a
      // host name or address: any other scheme's "host" is free text from the upstream.
      const web = (next.protocol === 'http:' || next.protocol === 'https:') && next.host.length <= 260;
      throw new PermanentUpstreamError(`upstream redirected to another origin${web ? ` (${next.protocol}//${next.host})` : ''}; not followed`);
    }
    if (hop >= this.options.maxRedirects) throw new PermanentUpstreamError(`upstream redirected more than ${this.options.maxRedirects} times`);
    return next.href;
  }
}

/**
 * A signal aborted after `ms`, or when `also` aborts, and `done` to clear it once the call is
 * over. Not `AbortSignal.any([AbortSignal.timeout(ms), also])`: on Node 20 a garbage
 * collection could free the timeout signal inside it before it fired (nodejs/node#57736), and
 * then nothing bounded a body trickling in once the headers had come (axios's own `timeout`
 * stops at the headers). The timer here is held until `done`.
 */
function deadline(ms: number, also?: AbortSignal): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms);
  const forward = () => controller.abort(also?.reason);
  if (also?.aborted) forward();
  else also?.addEventListener('abort', forward, { once: true });
  return {
    signal: controller.signal,
    done: () => {
      clearTimeout(timer);
      also?.removeEventListener('abort', forward);
    },
  };
}

/** A 2xx body as text (UTF-8, a leading BOM dropped, as axios's text responses). */
async function readText(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function header(res: AxiosResponse<unknown>, name: string): string | undefined {
  const v: unknown = (res.headers as Record<string, unknown>)[name];
  if (Array.isArray(v)) return typeof v[0] === 'string' ? v[0] : undefined;
  return typeof v === 'string' ? v : undefined;
}

/**
 * An answer's `Retry-After` (ms), on the statuses it is defined for (RFC 9110 §10.2.3: 503, and
 * 429 by RFC 6585): on another 5xx it would have paused the source for up to a day.
 */
function retryAfterOf(res: AxiosResponse<unknown>, status: number): number | undefined {
  return status === 429 || status === 503 ? retryAfterMs(header(res, 'retry-after')) : undefined;
}

/** Delay-seconds read: past this, a longer wait means nothing more (~31 years). */
const MAX_RETRY_AFTER_S = 999_999_999;

/**
 * `Retry-After` as ms from now: delay-seconds (any number of digits: more than MAX_RETRY_AFTER_S
 * reads as that) or an HTTP-date; undefined when absent or unreadable.
 */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v), MAX_RETRY_AFTER_S) * 1000;
  if (v.length > 64 || !/^[A-Za-z]/.test(v)) return undefined; // an HTTP-date starts with the day name
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** What went wrong with a call, in our words; `party` names the other side in them (the upstream, or a webhook receiver). */
function classify(err: unknown, maxBytes: number, party: 'upstream' | 'receiver' = 'upstream'): SourceError {
  const e = err as AxiosError;
  const message = typeof e?.message === 'string' ? e.message : '';
  if (/maxContentLength/i.test(message)) return new PermanentUpstreamError(tooLarge(maxBytes));
  // A body that does not decompress (corrupt gzip, deflate or brotli) is what the upstream sent:
  // the same bytes again would fail the same way, so it is a payload error, not a retry.
  if (typeof e?.code === 'string' && /^(Z_|ERR_BROTLI|ERR_ZSTD)/.test(e.code)) {
    return new PayloadError(`${party} payload could not be decompressed (${e.code})`);
  }
  // axios's words for a body the upstream stopped sending mid-way (it closed the connection):
  // retried like any network failure, but not reported as our timeout.
  if ((e?.code === 'ERR_BAD_RESPONSE' && message === 'stream has been aborted') || (e?.code === 'ECONNRESET' && message === 'aborted')) {
    return new TransientUpstreamError(`${party} closed the connection before the whole answer arrived`);
  }
  if (e?.code === 'ECONNABORTED' || e?.code === 'ETIMEDOUT' || e?.code === 'ERR_CANCELED' || /timeout|aborted/i.test(message)) {
    return new TransientUpstreamError(`${party} timed out`);
  }
  // A certificate the client refuses is refused again on every attempt: not a retry.
  if (typeof e?.code === 'string' && (CERTIFICATE_ERRORS.has(e.code) || e.code.startsWith('ERR_TLS_CERT'))) {
    return new PermanentUpstreamError(`${party} certificate refused (${e.code})`);
  }
  // Only the error code: a message may carry text from the other side.
  return new TransientUpstreamError(`${party} unreachable (${typeof e?.code === 'string' ? e.code : 'network error'})`);
}

/** OpenSSL's verification errors, as Node reports them (err.code). */
const CERTIFICATE_ERRORS = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'HOSTNAME_MISMATCH',
]);

/**
 * Answers worth another attempt: 408, 429 and 5xx but 501 (Not Implemented) and 505 (HTTP Version
 * Not Supported), which the same request gets again whenever it is sent.
 */
function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

async function readCapped(url: string, maxBytes: number): Promise<string> {
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch {
    throw new PermanentUpstreamError(`cannot read ${url}: not a local file URL`);
  }
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      if (size > maxBytes) throw new PermanentUpstreamError(tooLarge(maxBytes));
      return await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof SourceError) throw err;
    throw new PermanentUpstreamError(`cannot read ${url}: ${(err as NodeJS.ErrnoException).code ?? 'read error'}`);
  }
}

const tooLarge = (maxBytes: number) => `upstream payload is too large (over ${maxBytes} bytes)`;

function decodeJson(text: string): unknown {
  const tooMany = jsonSizeProblem(text);
  if (tooMany !== undefined) throw new PayloadError(`upstream payload is not parsed: ${tooMany}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Never quote the text: it may be any page (issue #11.1).
    throw new PayloadError(`upstream payload is not JSON (${text.length} characters)`);
  }
}

/** A call cut short, or never made, because the service is shutting down: transient (the next run tries again). */
function shuttingDown(): TransientUpstreamError {
  return new TransientUpstreamError('upstream call aborted: the service is shutting down');
}

/** Longest wait between two attempts, whatever UPSTREAM_RETRY_BASE_MS and UPSTREAM_RETRIES say (a run holds its source's lease). */
const MAX_BACKOFF_MS = 30_000;

function backoff(attempt: number, baseMs: number): number {
  const exp = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** (attempt - 1));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}
