import type { IncomingMessage } from 'node:http';
import { DUPLICATE_HOST_MESSAGE, hasUnframedBody, hostProblem, INVALID_HOST_MESSAGE, MISSING_HOST_MESSAGE } from './http-framing.js';

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

/** A parsed request with these raw header lines (Node keeps the first Host in `headers`). */
const withHeaders = (rawHeaders: string[], version = '1.1') => {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i].toLowerCase()] ??= rawHeaders[i + 1];
  const [httpVersionMajor, httpVersionMinor] = version.split('.').map(Number);
  return { headers, rawHeaders, httpVersionMajor, httpVersionMinor } as unknown as IncomingMessage;
};

describe('hostProblem (RFC 9112 section 3.2)', () => {
  it.each(['example.com', 'EXAMPLE.com:8080', '127.0.0.1', '127.0.0.1:3000', '[::1]', '[::1]:3000', '[fe80::1%25eth0]:80', 'my_host.internal.', 'xn--bcher-kva.example', 'a%2Db', 'example.com:', ''])(
    'Host "%s" is fine',
    (host) => {
      expect(hostProblem(withHeaders(['Host', host]))).toBeUndefined();
    },
  );

  it.each(['exa mple.com', 'example.com/path', 'user@example.com', 'example.com:80:80', 'example.com:http', '[::1', '::1', 'a%zzb', 'example.com\\', '"example.com"'])('Host "%s" is invalid', (host) => {
    expect(hostProblem(withHeaders(['Host', host]))).toBe(INVALID_HOST_MESSAGE);
  });

  it('two Host lines are refused, the same value or not, whatever their case', () => {
    expect(hostProblem(withHeaders(['Host', 'a.example', 'host', 'a.example']))).toBe(DUPLICATE_HOST_MESSAGE);
    expect(hostProblem(withHeaders(['HOST', 'a.example', 'Accept', '*/*', 'Host', 'b.example'], '1.0'))).toBe(DUPLICATE_HOST_MESSAGE);
  });

  it('no Host is refused on HTTP/1.1 only', () => {
    expect(hostProblem(withHeaders(['Accept', '*/*']))).toBe(MISSING_HOST_MESSAGE);
    expect(hostProblem(withHeaders(['Accept', '*/*'], '1.0'))).toBeUndefined();
  });
});
