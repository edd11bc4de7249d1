import type { IncomingMessage } from 'node:http';
import { DUPLICATE_AUTHORIZATION_MESSAGE, DUPLICATE_HOST_MESSAGE, hasUnframedBody, headerProblem, MISSING_HOST_MESSAGE, WEBSOCKET_HOST_MESSAGE } from './http-framing.js';

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
  return { method: 'GET', headers, rawHeaders, httpVersionMajor, httpVersionMinor, url: '/ws/notifications' } as unknown as IncomingMessage;
};
const handshake = (host: string) => withHeaders(['Host', host, 'Upgrade', 'websocket', 'Connection', 'Upgrade']);

describe('headerProblem (RFC 9112 section 3.2)', () => {
  const fine = ['example.com', 'EXAMPLE.com:8080', '127.0.0.1:3000', '[::1]:3000', 'my_host.internal.', 'xn--bcher-kva.example', 'example.com:'];
  // What a WebSocket handshake's URL cannot be resolved against (WsAdapter's `new URL`: no IPv6
  // zone, no empty host for ws:).
  const unresolvable = ['', '[fe80::1%25eth0]:80', 'exa mple.com', 'outbound|8080||backend.default.svc.cluster.local', '[::1', '[zz]', 'a%00b', 'example.com:http', 'example.com:80:80'];

  it.each(fine)('Host "%s" is fine, on a WebSocket handshake too', (host) => {
    expect(headerProblem(withHeaders(['Host', host]))).toBeUndefined();
    expect(headerProblem(handshake(host))).toBeUndefined();
  });

  // Nothing reads a plain request's Host, and real infrastructure sends names outside RFC 9110's
  // syntax (an Envoy health check sends its cluster's name, e.g. Istio's `outbound|…`).
  it.each(unresolvable)('Host "%s" is refused on a WebSocket handshake only', (host) => {
    expect(headerProblem(withHeaders(['Host', host]))).toBeUndefined();
    expect(headerProblem(handshake(host))).toBe(WEBSOCKET_HOST_MESSAGE);
  });

  it('only a GET offering the WebSocket protocol has its Host resolved (what the gateway is handed)', () => {
    const post = { ...handshake('[zz]'), method: 'POST' } as unknown as IncomingMessage;
    expect(headerProblem(post)).toBeUndefined();
    expect(headerProblem(withHeaders(['Host', '[zz]', 'Upgrade', 'xwebsocketx']))).toBeUndefined();
    expect(headerProblem(withHeaders(['Host', '[zz]', 'Upgrade', 'h2c, WebSocket']))).toBe(WEBSOCKET_HOST_MESSAGE);
  });

  it('two Host lines are refused, the same value or not, whatever their case', () => {
    expect(headerProblem(withHeaders(['Host', 'a.example', 'host', 'a.example']))).toBe(DUPLICATE_HOST_MESSAGE);
    expect(headerProblem(withHeaders(['HOST', 'a.example', 'Accept', '*/*', 'Host', 'b.example'], '1.0'))).toBe(DUPLICATE_HOST_MESSAGE);
  });

  it('two Authorization lines are refused (Node would keep the first and drop the other silently)', () => {
    expect(headerProblem(withHeaders(['Host', 'a', 'Authorization', 'Bearer good', 'authorization', 'Bearer nope']))).toBe(DUPLICATE_AUTHORIZATION_MESSAGE);
    expect(headerProblem(withHeaders(['Host', 'a', 'Authorization', 'Bearer good']))).toBeUndefined();
    // Without Host too (HTTP/1.0 needs none).
    expect(headerProblem(withHeaders(['Authorization', 'Bearer good', 'Authorization', 'Bearer nope'], '1.0'))).toBe(DUPLICATE_AUTHORIZATION_MESSAGE);
  });

  it('no Host is refused on HTTP/1.1 only', () => {
    expect(headerProblem(withHeaders(['Accept', '*/*']))).toBe(MISSING_HOST_MESSAGE);
    expect(headerProblem(withHeaders(['Accept', '*/*'], '1.0'))).toBeUndefined();
  });
});
