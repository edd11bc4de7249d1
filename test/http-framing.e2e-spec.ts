import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { once } from 'node:events';
import { AddressInfo, connect } from 'node:net';
import { startTestApp, stopTestApp, TEST_REFRESH_TOKEN } from './support/app.js';
import { uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

interface Exchange {
  /** Status codes of every response the server sent on the connection, in order. */
  statuses: number[];
  /** Whether the server closed the connection (rather than keeping it open for more). */
  closedByServer: boolean;
  raw: string;
}

/**
 * Writes raw bytes on one keep-alive connection (and `afterFirstAnswer` once a first response
 * has come, if the connection is still open) and collects what comes back until the server
 * closes it, or until it has answered `expected` responses and stays open.
 */
function exchange(port: number, bytes: string, expected: number, afterFirstAnswer?: string): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    const statuses = () => [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    // A server that keeps the connection open after the expected answers has had its chance to close it.
    let idle: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      clearTimeout(idle);
      socket.destroy();
      resolve({ statuses: statuses(), closedByServer, raw });
    };
    let later = afterFirstAnswer;
    socket.on('data', (chunk) => {
      raw += chunk.toString('latin1');
      clearTimeout(idle);
      if (later !== undefined && statuses().length > 0 && raw.includes('\r\n\r\n')) {
        // The rest of the body arrives after the server has answered (a second TCP segment).
        const rest = later;
        setTimeout(() => socket.writable && socket.write(rest), 100);
        later = undefined;
      }
      if (statuses().length >= expected) idle = setTimeout(() => finish(false), 1000);
    });
    socket.on('end', () => finish(true));
    // Writing to a connection the server has closed fails: the answer is what matters.
    socket.on('error', (err) => (statuses().length > 0 ? finish(true) : reject(err)));
    socket.write(bytes);
  });
}

/**
 * RFC 9112 §6.1: a request whose Transfer-Encoding does not end in chunked has no determinable
 * body length; the server must answer 400 and close the connection. Before, Fastify answered
 * 415 and kept the connection, so the body's bytes were then read as a next request (Node's 400).
 */
describe('request framing (e2e, raw sockets)', () => {
  const prefix = uniquePrefix('framing');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let port: number;

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, loadFixture().slice(0, 10)));
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });
  afterAll(() => stopTestApp(prefix, { app, upstream, redis }));

  it.each([
    ['POST /refresh', 'xchunked'],
    ['POST /refresh', 'chunked, gzip'],
    ['POST /refresh', 'gzip'],
    ['POST /refresh', 'chunked, chunked'],
    ['GET /is-bitcoin-lit', 'xchunked'],
  ])('%s with Transfer-Encoding: %s gets one 400 and the connection closed', async (line, te) => {
    const request = [
      `${line} HTTP/1.1`,
      'Host: 127.0.0.1',
      `Authorization: Bearer ${TEST_REFRESH_TOKEN}`,
      'Content-Type: application/json',
      `Transfer-Encoding: ${te}`,
      '',
      // What a chunked body would look like: must not be read as another request.
      '2\r\n{}\r\n0\r\n\r\n',
    ].join('\r\n');
    const { statuses, closedByServer, raw } = await exchange(port, request, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(raw).toMatch(/\r\nconnection: close\r\n/i);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    expect(body).toMatchObject({
      statusCode: 400,
      error: 'Bad Request',
      message: 'Transfer-Encoding must end with chunked, applied once (RFC 9112 section 6.1): the request body length cannot be determined',
    });
  });

  // Node's own parser refuses both, naming whichever came second: answered in the API's shape, with a message that says so.
  it.each([
    ['Content-Length first', ['Content-Length: 5', 'Transfer-Encoding: chunked']],
    ['Transfer-Encoding first', ['Transfer-Encoding: chunked', 'Content-Length: 5']],
  ])('a request with both Transfer-Encoding and Content-Length (%s) gets one 400 that says so, and the connection closed', async (_order, lengths) => {
    const request = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', ...lengths, '', '0', '', ''].join('\r\n');
    const { statuses, closedByServer, raw } = await exchange(port, request, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(raw).toMatch(/\r\ndate: \w{3}, \d{2} \w{3} \d{4} [\d:]{8} GMT\r\n/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({
      statusCode: 400,
      message: 'A request must not have both Transfer-Encoding and Content-Length (RFC 9112 section 6.1): the request body length is ambiguous',
    });
  });

  // RFC 9112 §3.2. Node's own check answered a bare 400: no body, no request id, no security headers.
  it.each(['/series', '/health/live'])('an HTTP/1.1 request for %s without Host gets the API’s 400 and the connection closed; HTTP/1.0 needs none', async (url) => {
    const { statuses, closedByServer, raw } = await exchange(port, `GET ${url} HTTP/1.1\r\nX-Request-Id: no-host\r\n\r\n`, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(raw).toMatch(/\r\nx-request-id: no-host\r\n/);
    expect(raw).toMatch(/\r\nx-content-type-options: nosniff\r\n/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: 'An HTTP/1.1 request must have a Host header (RFC 9112 section 3.2)',
      requestId: 'no-host',
    });
    const old = await exchange(port, `GET ${url} HTTP/1.0\r\n\r\n`, 1);
    expect(old.statuses).toEqual([200]);
  });

  // Fastify's default said "Client Error" for every request Node's parser refused.
  it.each([
    ['FOO / HTTP/1.1\r\nHost: x\r\n\r\n', 'Unknown request method (methods are case-sensitive: GET, HEAD, POST)'],
    ['POST /refresh HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 'Content-Length is not a single non-negative number'],
    ['GET /series HTTP/1.1\nHost: x\n\n', 'The request line must end in HTTP/1.1 (or 1.0) and CRLF'],
  ])('a request the parser refuses gets a 400 that says why: %j', async (request, message) => {
    const { statuses, closedByServer, raw } = await exchange(port, request, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(bodyOf(raw)).toMatchObject({ statusCode: 400, error: 'Bad Request', message });
  });

  // Node keeps the first of two Authorization lines: a proxy that checks the last one would see other credentials.
  it('a request with two Authorization lines gets the API’s 400 and the connection closed, and runs nothing', async () => {
    const request = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${TEST_REFRESH_TOKEN}`, 'Authorization: Bearer nope', 'Content-Length: 0', '', ''].join('\r\n');
    const calls = upstream.calls;
    const { statuses, closedByServer, raw } = await exchange(port, request, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(bodyOf(raw)).toMatchObject({ statusCode: 400, message: 'A request must have at most one Authorization header' });
    expect(upstream.calls).toBe(calls);
  });

  const HOST_MESSAGE = 'An HTTP/1.1 request must have a Host header (RFC 9112 section 3.2)';
  const bodyOf = (raw: string) => JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;

  // Node answers Expect before emitting the request; its Host check came first, so must ours.
  it.each([
    ['Expect: 100-continue', 'POST /refresh HTTP/1.1\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n'],
    ['another Expect', 'GET /health/live HTTP/1.1\r\nExpect: something-else\r\n\r\n'],
    ['a WebSocket handshake', 'GET /ws/notifications HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'],
  ])('without Host, %s gets the same 400 first, and nothing else', async (_kind, request) => {
    const { statuses, closedByServer, raw } = await exchange(port, request, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(raw).not.toContain('100 Continue');
    expect(bodyOf(raw)).toMatchObject({ statusCode: 400, message: HOST_MESSAGE });
  });

  it.each(['100-continue', 'something-else'])('Expect: %s with a body that cannot be delimited gets the one 400, no 100 or 417 first', async (expect100) => {
    const request = `POST /refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: ${expect100}\r\nTransfer-Encoding: gzip\r\n\r\nGET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    const { statuses, closedByServer, raw } = await exchange(port, request, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(bodyOf(raw)).toMatchObject({ statusCode: 400, message: 'Transfer-Encoding must end with chunked, applied once (RFC 9112 section 6.1): the request body length cannot be determined' });
  });

  it('with Host, Expect: 100-continue gets its 100 and then the answer; another Expect a 417 in the API’s shape', async () => {
    const post = await exchange(port, 'POST /refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n', 2, '{}');
    expect(post.statuses).toEqual([100, 401]);
    const other = await exchange(port, 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: something-else\r\nX-Request-Id: expect-417\r\n\r\n', 1);
    expect(other.statuses).toEqual([417]);
    expect(bodyOf(other.raw)).toEqual({ statusCode: 417, error: 'Expectation Failed', message: 'Only Expect: 100-continue is supported', requestId: 'expect-417' });
  });

  // RFC 9112 §3.2 again: Node kept the first of two Hosts and never looked at a Host's value.
  const handshake = 'GET /ws/notifications HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
  it.each([
    ['two Hosts', 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n', 'A request must have at most one Host header (RFC 9112 section 3.2)'],
    ['two Hosts on HTTP/1.0', 'GET /health/live HTTP/1.0\r\nHost: 127.0.0.1\r\nhost: 127.0.0.1\r\n', 'A request must have at most one Host header (RFC 9112 section 3.2)'],
    ['a WebSocket handshake with two Hosts', `${handshake}Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n`, 'A request must have at most one Host header (RFC 9112 section 3.2)'],
    // Its URL cannot be resolved against such a Host: WsAdapter wrote a malformed answer, we a 404.
    ['a WebSocket handshake with an invalid Host', `${handshake}Host: [::1\r\n`, "A WebSocket handshake's Host header must be a host name or address with an optional port (RFC 9110 section 7.2)"],
    ['a WebSocket handshake with a Host no URL takes', `${handshake}Host: outbound|8080||svc.local\r\n`, "A WebSocket handshake's Host header must be a host name or address with an optional port (RFC 9110 section 7.2)"],
  ])('%s gets the API’s 400 and the connection closed; a request pipelined behind it is not served', async (_kind, head, message) => {
    const calls = upstream.calls;
    const refresh = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${TEST_REFRESH_TOKEN}`, 'Content-Length: 0', '', ''].join('\r\n');
    const { statuses, closedByServer, raw } = await exchange(port, `${head}X-Request-Id: bad-host\r\n\r\n${refresh}`, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    expect(raw).toMatch(/\r\nx-content-type-options: nosniff\r\n/);
    expect(bodyOf(raw)).toEqual({ statusCode: 400, error: 'Bad Request', message, requestId: 'bad-host' });
    await new Promise((r) => setTimeout(r, 300));
    expect(upstream.calls).toBe(calls); // the refresh would have called the upstream
  });

  // Answered in front of Fastify, they had no access log line and no timing in the metrics.
  it('a request answered before routing gets an access log line (its reason in the message) and a timing under route unmatched', async () => {
    const logged: unknown[][] = [];
    const record = (level: string) => (line: unknown, text: unknown) => void logged.push([level, line, text]);
    const spies = [jest.spyOn(Logger.prototype, 'log').mockImplementation(record('info')), jest.spyOn(Logger.prototype, 'debug').mockImplementation(record('debug'))];
    const countOf = async (status: number, method = 'GET') => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(new RegExp(`\\nhttp_request_duration_seconds_count\\{method="${method}",route="unmatched",status="${status}"\\} (\\d+)\\n`).exec(text)?.[1] ?? 0);
    };
    try {
      const before = [await countOf(400), await countOf(417), await countOf(431, 'unknown'), await countOf(400, 'POST')];
      // The path as the access log writes it: no query string, no absolute-form origin or credentials.
      const refused = await exchange(port, 'GET http://user:secret@127.0.0.1/series?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n', 1);
      const { requestId } = bodyOf(refused.raw) as { requestId: string };
      // A probe's path: at debug, as its access line would be.
      await exchange(port, 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: something-else\r\nX-Request-Id: expect-logged\r\n\r\n', 1);
      // Refused by Node's parser (oversized headers): no request to name, a new request id.
      const big = await exchange(port, `GET /series HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`, 1);
      const bigId = (bodyOf(big.raw) as { requestId: string }).requestId;
      // Served as a plain request but for its body (upgrade.ts).
      await exchange(port, 'POST /refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nX-Request-Id: upgrade-body\r\nContent-Length: 5\r\n\r\nhello', 1);
      // Refused by Fastify's router (a malformed URL): no hook runs for it either.
      await exchange(port, 'GET /series/%zz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: router-refused\r\n\r\n', 1);
      const line = (level: string, id: string, method: string, path: string, statusCode: number, message: string) => [
        level,
        { req: { id, method, url: path }, res: { statusCode, headersSent: true }, responseTime: expect.any(Number) },
        `request answered before routing: ${message}`,
      ];
      expect(logged.filter(([, , text]) => String(text).includes('before routing'))).toEqual([
        line('info', requestId, 'GET', '/series', 400, 'A request must have at most one Host header (RFC 9112 section 3.2)'),
        line('debug', 'expect-logged', 'GET', '/health/live', 417, 'Only Expect: 100-continue is supported'),
        line('info', bigId, 'unknown', '', 431, 'Exceeded maximum allowed HTTP header size'),
        line('info', 'upgrade-body', 'POST', '/refresh', 400, 'Upgrade is only supported for the WebSocket handshake; send this request without the Upgrade header'),
        line('info', 'router-refused', 'GET', '/series/%zz', 400, 'the router refused its URL (FST_ERR_BAD_URL)'),
      ]);
      expect([await countOf(400), await countOf(417), await countOf(431, 'unknown'), await countOf(400, 'POST')]).toEqual([before[0] + 2, before[1] + 1, before[2] + 1, before[3] + 1]);
    } finally {
      spies.forEach((spy) => spy.mockRestore());
    }
  });

  it('a connection that sends nothing until the request timeout is no request: no log line, no timing', async () => {
    const slowPrefix = uniquePrefix('framing-idle');
    const slow = await startTestApp(slowPrefix, [], { HTTP_REQUEST_TIMEOUT_MS: '1000' });
    const logged: string[] = [];
    const spy = jest.spyOn(Logger.prototype, 'log').mockImplementation((_line: unknown, text: unknown) => void logged.push(String(text)));
    try {
      await slow.app.listen(0, '127.0.0.1');
      const slowPort = (slow.app.getHttpServer().address() as AddressInfo).port;
      // Read (and dropped), so each sees the server's close.
      const idle = connect(slowPort, '127.0.0.1').resume();
      const partial = connect(slowPort, '127.0.0.1').resume();
      await Promise.all([once(idle, 'connect'), once(partial, 'connect')]);
      partial.write('GET /series HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // never finished: a 408, reported
      await Promise.all([once(idle, 'close'), once(partial, 'close')]);
      expect(logged.filter((text) => text.includes('before routing'))).toEqual(['request answered before routing: Client Timeout']);
    } finally {
      spy.mockRestore();
      await stopTestApp(slowPrefix, slow);
    }
  });

  // The 400 waits for the answers before it; dropping the connection at the next request lost them all.
  it.each([
    ['without Host', 'GET /q2 HTTP/1.1\r\n\r\n'],
    ['with a body that cannot be delimited', 'GET /q2 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n'],
  ])('a request %s pipelined behind a good one: both answered in order, then the connection closed; the one behind is not served', async (_kind, bad) => {
    const calls = upstream.calls;
    const refresh = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${TEST_REFRESH_TOKEN}`, 'Content-Length: 0', '', ''].join('\r\n');
    const { statuses, closedByServer } = await exchange(port, `GET /verdict HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${bad}${refresh}`, 2);
    expect({ statuses, closedByServer }).toEqual({ statuses: [200, 400], closedByServer: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(upstream.calls).toBe(calls);
  });

  // Node queues a response for every request it parses behind an answer still on its way; one
  // client streaming requests behind an SSE stream and a refused request grew the process by GBs.
  it('more than one request behind a refused one, while an answer is still on its way: the connection is dropped', async () => {
    const verdict = 'GET /verdict HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const { statuses, closedByServer } = await exchange(port, `GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /q2 HTTP/1.1\r\n\r\n${verdict.repeat(3)}`, 1);
    expect(closedByServer).toBe(true);
    expect(statuses.every((s) => s === 200)).toBe(true); // at most the stream's head, nothing behind it
  });

  // Nothing reads a plain request's Host: names outside RFC 9110's syntax are served (an Envoy
  // health check sends its cluster's name, e.g. Istio's `outbound|8080||svc…`).
  it.each(['127.0.0.1', 'localhost:1234', '[::1]:80', 'my_service.internal.', 'outbound|8080||backend.default.svc.cluster.local', 'a b'])('Host: %s is served', async (host) => {
    const { statuses } = await exchange(port, `GET /health/live HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 1);
    expect(statuses).toEqual([200]);
  });

  it('a request pipelined behind one without Host is not served', async () => {
    const calls = upstream.calls;
    const refresh = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${TEST_REFRESH_TOKEN}`, 'Content-Length: 0', '', ''].join('\r\n');
    const { statuses, closedByServer } = await exchange(port, `GET /health/live HTTP/1.1\r\n\r\n${refresh}`, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(upstream.calls).toBe(calls); // the refresh would have called the upstream
  });

  it('a body that arrives after the answer is not read as a next request (one 400, then the connection closed)', async () => {
    const head = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${TEST_REFRESH_TOKEN}`, 'Transfer-Encoding: xchunked', '', ''].join('\r\n');
    const { statuses, closedByServer } = await exchange(port, head, 2, '2\r\n{}\r\n0\r\n\r\n');
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
  });

  it('a request hidden in the unread body (empty Transfer-Encoding) is never served', async () => {
    const calls = upstream.calls;
    const smuggled = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${TEST_REFRESH_TOKEN}`, 'Content-Length: 0', '', ''].join('\r\n');
    const request = ['GET /health/live HTTP/1.1', 'Host: 127.0.0.1', 'Transfer-Encoding: ', '', smuggled].join('\r\n');
    const { statuses, closedByServer } = await exchange(port, request, 1);
    expect({ statuses, closedByServer }).toEqual({ statuses: [400], closedByServer: true });
    // Had the smuggled POST /refresh run, it would have called the upstream.
    await new Promise((r) => setTimeout(r, 300));
    expect(upstream.calls).toBe(calls);
  });

  it('a properly chunked request is served and the connection stays usable', async () => {
    const chunked = ['GET /health/live HTTP/1.1', 'Host: 127.0.0.1', 'Transfer-Encoding: chunked', '', '0', '', ''].join('\r\n');
    const plain = ['GET /health/live HTTP/1.1', 'Host: 127.0.0.1', '', ''].join('\r\n');
    const { statuses, closedByServer } = await exchange(port, chunked + plain, 2);
    expect({ statuses, closedByServer }).toEqual({ statuses: [200, 200], closedByServer: false });
  });

  // Fastify's default requestTimeout (0) turned off Node's own (300 s): a client sending a body
  // a byte at a time held its connection and request open for as long as it liked.
  it('a request whose body never completes is answered 408 and closed after HTTP_REQUEST_TIMEOUT_MS', async () => {
    const slowPrefix = uniquePrefix('framing-slow');
    const slow = await startTestApp(slowPrefix, [], { HTTP_REQUEST_TIMEOUT_MS: '1000' });
    try {
      await slow.app.listen(0, '127.0.0.1');
      const slowPort = (slow.app.getHttpServer().address() as AddressInfo).port;
      const head = ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${TEST_REFRESH_TOKEN}`, 'Content-Type: application/json', 'Content-Length: 100', '', '{'].join('\r\n');
      const { statuses, closedByServer, raw } = await exchange(slowPort, head, 2);
      expect({ statuses, closedByServer }).toEqual({ statuses: [408], closedByServer: true });
      expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({ statusCode: 408, error: 'Request Timeout' });
    } finally {
      await stopTestApp(slowPrefix, slow);
    }
  });
});
