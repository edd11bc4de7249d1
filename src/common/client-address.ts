import type { IncomingMessage } from 'node:http';

/**
 * The client's IP as Fastify's `request.ip` gives it (so the rate limit and the notification
 * slots agree), for requests Fastify never sees (WebSocket upgrades): with TRUST_PROXY, the
 * first address of X-Forwarded-For (Fastify's `trustProxy: true` trusts every hop, and empty
 * entries are skipped), otherwise the peer's address.
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const peer = req.socket.remoteAddress ?? '';
  const forwarded = req.headers['x-forwarded-for'];
  if (!trustProxy || forwarded === undefined) return peer;
  const first = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded)
    .split(',')
    .map((a) => a.trim())
    .find((a) => a !== '');
  return first ?? peer;
}
