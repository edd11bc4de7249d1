import type { IncomingMessage } from 'node:http';
import { hasUnframedBody } from './http-framing.js';

const request = (te?: string) => ({ headers: te === undefined ? {} : { 'transfer-encoding': te } }) as IncomingMessage;

describe('hasUnframedBody (RFC 9112 section 6.1)', () => {
  it.each(['xchunked', 'gzip', 'chunked, gzip', 'identity', 'chunkedx', ''])('Transfer-Encoding "%s" cannot be delimited', (te) => {
    expect(hasUnframedBody(request(te))).toBe(true);
  });

  it.each(['chunked', 'Chunked', 'gzip, chunked', ' gzip ,  CHUNKED ', 'chunked,'])('Transfer-Encoding "%s" ends in chunked', (te) => {
    expect(hasUnframedBody(request(te))).toBe(false);
  });

  it('no Transfer-Encoding (Content-Length or no body) is left to the parser', () => {
    expect(hasUnframedBody(request())).toBe(false);
  });
});
