import type { IncomingMessage } from 'node:http';
import { clientAddress } from './client-address.js';

const req = (forwarded?: string | string[]) => ({ socket: { remoteAddress: '10.0.0.1' }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  it('is the peer without TRUST_PROXY, whatever X-Forwarded-For says', () => {
    expect(clientAddress(req('203.0.113.7'), false)).toBe('10.0.0.1');
  });

  it('with TRUST_PROXY, the first X-Forwarded-For address, as Fastify’s request.ip (empty entries skipped)', () => {
    expect(clientAddress(req('203.0.113.7, 198.51.100.2'), true)).toBe('203.0.113.7');
    expect(clientAddress(req(' , 203.0.113.9'), true)).toBe('203.0.113.9');
    expect(clientAddress(req(['203.0.113.1', '198.51.100.2']), true)).toBe('203.0.113.1');
    expect(clientAddress(req(''), true)).toBe('10.0.0.1');
    expect(clientAddress(req(), true)).toBe('10.0.0.1');
  });
});
