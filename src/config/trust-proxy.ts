import proxyAddr from '@fastify/proxy-addr';

/** TRUST_PROXY: trust no proxy, every hop (`true`), or the proxies at these addresses / ranges. */
export type TrustProxy = boolean | string[];

/**
 * Which hops' X-Forwarded-For entries are believed, exactly as Fastify decides for `request.ip`
 * (fastify/lib/request.js getTrustProxyFn): so the rate limit, the SSE slots and the WebSocket
 * slots all see one client address. Throws on an address or range it cannot read, or a number.
 */
export function trustFunction(trust: TrustProxy): (addr: string, hop: number) => boolean {
  if (trust === true) return () => true;
  if (trust === false || trust.length === 0) return () => false;
  // Express/Fastify read a number as a hop count; proxy-addr reads "2" as the IPv4 address
  // 0.0.0.2, which would silently trust no proxy at all.
  const count = trust.find((entry) => /^\d+$/.test(entry));
  if (count !== undefined) {
    throw new Error(`"${count}" looks like a hop count, which is not supported: list the proxies' addresses or CIDR ranges instead`);
  }
  return proxyAddr.compile(trust);
}
