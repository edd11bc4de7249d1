import proxyAddr from '@fastify/proxy-addr';
import { isIPv4, isIPv6 } from 'node:net';
import type { IncomingMessage } from 'node:http';

/**
 * The client's address as Fastify's `request.ip` gives it, for requests Fastify never sees
 * (WebSocket upgrades): the nearest X-Forwarded-For entry not sent by a trusted proxy. With
 * TRUST_PROXY=true every hop is trusted, so that is the first entry, which the client wrote
 * itself when the proxy appends rather than replaces the header.
 */
export function clientAddress(req: IncomingMessage, trust: (addr: string, hop: number) => boolean): string | undefined {
  // Undefined when the connection was reset before its address was read (see clientKey).
  return proxyAddr(req, trust);
}

/**
 * The key of a client whose address is unknown: Node reports none for a connection the client
 * reset before its request was handled (the kernel took the reset in first). Such a client is
 * gone; its request is only counted, under this one key.
 */
export const UNKNOWN_CLIENT = 'unknown';

/**
 * The key a client's address is counted under (rate limit, notification slots per address): an
 * IPv4 address as it is (also when it comes IPv4-mapped, `::ffff:203.0.113.7`), an IPv6 address
 * by its /64, the smallest block a network is given (RFC 6177): one host there can use any of
 * 2^64 addresses, so counting exact addresses would give it a new budget per request. Anything
 * else (an X-Forwarded-For entry that is no address, with TRUST_PROXY) is kept as it is; no
 * address at all (a reset connection) is UNKNOWN_CLIENT.
 */
export function clientKey(address: string | undefined): string {
  if (address === undefined) return UNKNOWN_CLIENT;
  const bare = address.split('%')[0]; // a zone index (fe80::1%eth0) names the interface, not the host
  if (isIPv4(bare) || !isIPv6(bare)) return address;
  const hextets = expandIPv6(bare);
  if (hextets.slice(0, 5).every((h) => h === 0) && hextets[5] === 0xffff) return `${hextets[6] >> 8}.${hextets[6] & 255}.${hextets[7] >> 8}.${hextets[7] & 255}`;
  return `${hextets.slice(0, 4).map((h) => h.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` filled in, a dotted IPv4 tail as two groups). */
function expandIPv6(address: string): number[] {
  const groups = (part: string) => (part === '' ? [] : part.split(':')).flatMap((g) => (g.includes('.') ? dottedGroups(g) : [parseInt(g, 16)]));
  const [head, tail] = address.split('::');
  const front = groups(head);
  if (tail === undefined) return front;
  const back = groups(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function dottedGroups(ipv4: string): number[] {
  const [a, b, c, d] = ipv4.split('.').map(Number);
  return [(a << 8) | b, (c << 8) | d];
}
