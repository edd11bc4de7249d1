import type { IncomingMessage } from 'node:http';
import { trustFunction } from '../config/trust-proxy.js';
import { clientAddress, clientKey, UNKNOWN_CLIENT } from './client-address.js';

const req = (forwarded?: string | string[]) =>
  ({ socket: { remoteAddress: '10.0.0.1' }, connection: { remoteAddress: '10.0.0.1' }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  it('is undefined when Node read no peer address (a connection the client reset), with or without TRUST_PROXY', () => {
    const reset = { socket: {}, connection: {}, headers: {} } as unknown as IncomingMessage;
    expect(clientAddress(reset, trustFunction(false))).toBeUndefined();
    expect(clientAddress(reset, trustFunction(true))).toBeUndefined();
    expect(clientKey(undefined)).toBe(UNKNOWN_CLIENT);
  });

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

describe('clientKey', () => {
  it('keeps an IPv4 address, also one that comes IPv4-mapped', () => {
    expect(clientKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('::ffff:cb00:7107')).toBe('203.0.113.7');
  });

  it('counts an IPv6 address by its /64, however it is written', () => {
    const key = '2001:db8:85a3:42::/64';
    expect(clientKey('2001:db8:85a3:42::1')).toBe(key);
    expect(clientKey('2001:0db8:85a3:0042:ffff:ffff:ffff:fffe')).toBe(key);
    expect(clientKey('2001:DB8:85A3:42:1:2:3:4')).toBe(key);
    expect(clientKey('2001:db8:85a3:42::192.0.2.1')).toBe(key);
    expect(clientKey('2001:db8:85a3:43::1')).not.toBe(key);
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('::')).toBe('0:0:0:0::/64');
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('keeps anything that is no address as it is', () => {
    expect(clientKey('a{}b')).toBe('a{}b');
    expect(clientKey('')).toBe('');
    expect(clientKey('2001:db8::g')).toBe('2001:db8::g');
  });
});
