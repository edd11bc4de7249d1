import proxyAddr from '@fastify/proxy-addr';
import type { IncomingMessage } from 'node:http';

/**
 * The client's address as Fastify's `request.ip` gives it, for requests Fastify never sees
 * (WebSocket upgrades): the nearest X-Forwarded-For entry not sent by a trusted proxy. With
 * TRUST_PROXY=true every hop is trusted, so that is the first entry, which the client wrote
 * itself when the proxy appends rather than replaces the header.
 */
export function clientAddress(req: IncomingMessage, trust: (addr: string, hop: number) => boolean): string {
  return proxyAddr(req, trust);
}
