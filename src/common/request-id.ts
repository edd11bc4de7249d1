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

/** The caller's X-Request-Id when well formed, otherwise a new id (not memoised). */
export function requestIdFrom(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ACCEPTED.test(given) ? given : newRequestId();
}

// UUID-shaped ids: the first 80 bits random per process (so instances do not collide), the last
// 48 a counter. Cheaper than a random UUID per request, which a cached hit otherwise paid for; a
// request id only has to be unique, not unguessable.
const ID_PREFIX = randomUUID().slice(0, 24);
let sequence = 0;

/** A new request id, unique within this process and, with overwhelming odds, across instances. */
export function newRequestId(): string {
  sequence = sequence === 0xffffffffffff ? 1 : sequence + 1;
  return ID_PREFIX + sequence.toString(16).padStart(12, '0');
}
