import type { IncomingMessage } from 'node:http';
import { trustFunction } from '../config/trust-proxy.js';
import { clientAddress } from './client-address.js';

const req = (forwarded?: string | string[]) =>
  ({ socket: { remoteAddress: '10.0.0.1' }, connection: { remoteAddress: '10.0.0.1' }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  it('is the peer without TRUST_PROXY, whatever X-Forwarded-For says', () => {
    expect(clientAddress(req('203.0.113.7'), trustFunction(false))).toBe('10.0.0.1');
    expect(clientAddress(req('203.0.113.7'), trustFunction([]))).toBe('10.0.0.1');
  });

  it('with TRUST_PROXY=true, the first X-Forwarded-For address, as Fastify\'s request.ip (empty entries skipped)', () => {
    const all = trustFunction(true);
    expect(clientAddress(req('203.0.113.7, 198.51.100.2'), all)).toBe('203.0.113.7');
    expect(clientAddress(req(' , 203.0.113.9'), all)).toBe('203.0.113.9');
    expect(clientAddress(req(''), all)).toBe('10.0.0.1');
    expect(clientAddress(req(), all)).toBe('10.0.0.1');
  });

  it('with TRUST_PROXY listing the proxies, the nearest address no listed proxy sent: an entry the client wrote is not believed', () => {
    const proxies = trustFunction(['10.0.0.0/8']);
    // The load balancer (10.0.0.1) appended the client's real address to what the client sent.
    expect(clientAddress(req('6.6.6.6, 203.0.113.9'), proxies)).toBe('203.0.113.9');
    // Two proxies in the chain.
    expect(clientAddress(req('203.0.113.9, 10.1.2.3'), proxies)).toBe('203.0.113.9');
    expect(() => trustFunction(['not-an-address'])).toThrow();
  });
});
