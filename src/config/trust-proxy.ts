import proxyAddr from '@fastify/proxy-addr';

/** TRUST_PROXY: trust no proxy, every hop (`true`), or the proxies at these addresses / ranges. */
export type TrustProxy = boolean | string[];

/**
 * Which hops' X-Forwarded-For entries are believed, exactly as Fastify decides for `request.ip`
 * (fastify/lib/request.js getTrustProxyFn): so the rate limit, the SSE slots and the WebSocket
 * slots all see one client address. Throws on an address or range it cannot read.
 */
export function trustFunction(trust: TrustProxy): (addr: string, hop: number) => boolean {
  if (trust === true) return () => true;
  if (trust === false || trust.length === 0) return () => false;
  return proxyAddr.compile(trust);
}
