// Replies that mean "Redis cannot serve right now", not "the command is wrong"; also as the cause
// of an aborted MULTI (a command refused while queued: EXEC answers EXECABORT … because of: BUSY …).
// MISCONF: writes (and PING) refused after a failed RDB save; NOAUTH/WRONGPASS: the server's
// credentials changed under a connected client. Neither is the request's fault.
const TRANSIENT_REPLY =
  /^(?:EXECABORT Transaction discarded because of: )?(LOADING|READONLY|OOM|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|NOAUTH|WRONGPASS)\b/;

/**
 * What may be said of a Redis error in a response (readiness details): an error reply by its
 * code only (MISCONF, OOM…: the rest is the server's text, with paths and settings), the
 * client's own errors as they are.
 */
export function redisErrorSummary(err: unknown): string {
  if (!(err instanceof Error)) return 'Redis call failed';
  if (err.name !== 'ReplyError') return err.message;
  const code = /^[A-Z][A-Z_-]{1,31}\b/.exec(err.message)?.[0];
  return `Redis refused the command${code ? ` (${code})` : ''}`;
}
const CONNECTION = /Connection is closed|Command timed out|Stream isn't writeable|connect ETIMEDOUT|ECONNREFUSED|ECONNRESET|EPIPE|Reached the max retries|None of startup nodes is available|Failed to refresh slots cache|Cluster isn't ready|Too many Cluster redirections/i;

/** True when an error comes from Redis being unreachable or temporarily unable to serve. */
export function isRedisUnavailableError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError' || err instanceof RedisNotConnectedError || err instanceof RedisStalledError) return true;
  if (err.name === 'ReplyError') {
    // A script's key whose slot is being migrated away (portable add script, cluster resharding).
    if (/Script attempted to access a non local key in a cluster node/.test(err.message)) return true;
    // ioredis keeps the queued commands' errors of an aborted MULTI (older servers say only "previous errors").
    const previous = (err as Error & { previousErrors?: unknown[] }).previousErrors;
    return TRANSIENT_REPLY.test(err.message) || (Array.isArray(previous) && previous.some(isRedisUnavailableError));
  }
  return CONNECTION.test(err.message);
}

/** Thrown before work that needs Redis when the client is not connected (fail before side effects). */
export class RedisNotConnectedError extends Error {
  override readonly name = 'RedisNotConnectedError';
  constructor(status: string) {
    super(`Redis is not connected (${status})`);
  }
}

/** A command refused without being sent: an earlier one timed out and Redis has not answered since (redis-stall.ts). */
export class RedisStalledError extends Error {
  override readonly name = 'RedisStalledError';
  constructor() {
    super('Redis is not answering (a command timed out); not sent');
  }
}
