import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const REQUEST_ID_HEADER = 'x-request-id';

// A caller's id is reused only if it is short and harmless in a log line or header.
const ACCEPTED = /^[A-Za-z0-9._:-]{1,128}$/;
const ids = new WeakMap<IncomingMessage, string>();

/**
 * The request's id: the caller's X-Request-Id when well formed (so ids follow a request across
 * services), otherwise a new UUID. Memoised per request, so Fastify (`request.id`, error
 * bodies, the response header) and pino-http (every log line) use the same one.
 */
export function requestIdOf(req: IncomingMessage): string {
  let id = ids.get(req);
  if (id === undefined) {
    id = requestIdFrom(req);
    ids.set(req, id);
  }
  return id;
}

/** The caller's X-Request-Id when well formed, otherwise a new UUID (not memoised). */
export function requestIdFrom(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ACCEPTED.test(given) ? given : randomUUID();
}
