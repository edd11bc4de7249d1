/**
 * The ways one upstream run can fail. Messages are ours: they may name a status code, an
 * error code or an origin, never the upstream's body (issue #11.1: an error message must not
 * carry a page the upstream, or whatever it redirected to, served).
 */
import type { SourceId } from './source.types.js';

/** A run of one source failed as a whole; nothing of it is stored. */
export abstract class SourceError extends Error {
  /** The provider whose run failed, when known. */
  source?: SourceId;
  /** HTTP calls made before giving up, retries included. */
  attempts?: number;
}

/** Worth retrying: network error, timeout, HTTP 5xx / 408 / 429, a provider's "busy". */
export class TransientUpstreamError extends SourceError {
  override readonly name = 'TransientUpstreamError';
  /** What the upstream asked for in `Retry-After` (ms), when it did. */
  readonly retryAfterMs?: number;

  constructor(message: string, options: { retryAfterMs?: number } = {}) {
    super(message);
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/**
 * Not called at all: the upstream asked (Retry-After) not to be called before `until`, and this
 * run came earlier. Nothing was fetched or stored.
 */
export class UpstreamPausedError extends SourceError {
  override readonly name = 'UpstreamPausedError';

  constructor(readonly until: number) {
    super(`upstream asked to wait until ${new Date(until).toISOString()}; skipped`);
  }
}

/** A retry will not fix it: HTTP 4xx, a redirect to another origin, too large, unreadable file. */
export class PermanentUpstreamError extends SourceError {
  override readonly name = 'PermanentUpstreamError';
}

/** The upstream answered, but not with something we can use (not JSON, wrong shape, mostly invalid records). */
export class PayloadError extends SourceError {
  override readonly name = 'PayloadError';
}

/** Runs one provider call, naming the provider on any SourceError it throws. */
export async function tagSource<T>(source: SourceId, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof SourceError && err.source === undefined) err.source = source;
    throw err;
  }
}
