import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { AddressInfo, connect } from 'node:net';
import { WebSocket } from 'ws';
import { AUTH, startTestApp, stopTestApp } from './support/app.js';
import { bodyOf, rawExchange, statusOf } from './support/raw-http.js';
import { uniquePrefix } from './support/redis.js';
import { waitFor } from './support/wait.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';

/**
 * Odd requests the router itself refuses, before any hook or filter runs: they must still get
 * the API's JSON error shape, the request id and the security headers.
 */
describe('API edges (e2e, real Redis)', () => {
  const prefix = uniquePrefix('edges');
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
    ['/series/%FF', 400, 'Bad Request'],
    ['/series/%', 400, 'Bad Request'],
    [`/series/${'a'.repeat(101)}`, 414, 'URI Too Long'],
  ])('GET %s (refused by the router) is a %i in the API error shape', async (url, status, error) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(status);
    const body = res.json<Record<string, unknown>>();
    expect(Object.keys(body).sort()).toEqual(['error', 'message', 'requestId', 'statusCode']);
    expect(body).toMatchObject({ statusCode: status, error, requestId: res.headers['x-request-id'] });
    expect(typeof body.message).toBe('string');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toBeDefined();
  });

  it('the WebSocket path asked without Upgrade is a 426 naming it, with Upgrade: websocket (it was a 404); another method a 405', async () => {
    const res = await app.inject({ method: 'GET', url: '/ws/notifications' });
    expect(res.statusCode).toBe(426);
    expect(res.headers.upgrade).toBe('websocket');
    expect(res.json()).toMatchObject({ statusCode: 426, error: 'Upgrade Required', message: expect.stringContaining('WebSocket endpoint') });
    const post = await app.inject({ method: 'POST', url: '/ws/notifications' });
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('a 404 for a 15,000-character path quotes the path cut to a kilobyte', async () => {
    const res = await app.inject({ method: 'GET', url: `/${'a'.repeat(15_000)}` });
    expect(res.statusCode).toBe(404);
    const message = res.json<{ message: string }>().message;
    expect(message).toHaveLength(1024);
    expect(message.endsWith('…')).toBe(true);
  });

  // A path that exists, asked with a method none of its routes takes, was a 404 ("Cannot POST
  // /health/live"), which tells a client the resource is not there (RFC 9110 §15.5.6).
  it.each([
    ['POST', '/health/live', 'GET, HEAD'],
    ['DELETE', '/is-bitcoin-lit', 'GET, HEAD'],
    ['PUT', '/series/price?from=1', 'GET, HEAD'],
    ['GET', '/refresh', 'POST'],
  ])('%s %s is a 405 with Allow: %s, in the API error shape', async (method, url, allow) => {
    const res = await app.inject({ method: method as 'GET', url });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe(allow);
    const body = res.json<Record<string, unknown>>();
    expect(Object.keys(body).sort()).toEqual(['error', 'message', 'requestId', 'statusCode']);
    expect(body).toMatchObject({ statusCode: 405, error: 'Method Not Allowed', requestId: res.headers['x-request-id'] });
    expect(body.message).toBe(`${method} is not supported on ${url.split('?')[0]}; use ${allow}`);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it.each([
    ['POST', '/nope'],
    ['GET', '/health/nope'],
  ])('%s %s, a path no route takes, is still a 404 without Allow', async (method, url) => {
    const res = await app.inject({ method: method as 'GET', url });
    expect(res.statusCode).toBe(404);
    expect(res.headers.allow).toBeUndefined();
  });

  // A repeated parameter arrives as an array: it used to be refused as a malformed value
  // ("from must be an ISO-8601 time…" for ?from=1&from=2), which does not say what is wrong.
  it.each([
    ['GET', '/series/price?from=1&from=2', 'from'],
    ['GET', '/series/combined?bucket=1h&bucket=1d', 'bucket'],
    ['GET', '/series/verdict?to=1&to=2', 'to'],
    ['GET', '/series/price?aggregation=avg&aggregation=avg', 'aggregation'],
    ['POST', '/refresh?full=true&full=false', 'full'],
  ])('%s %s is a 400 saying %s is given more than once', async (method, url, name) => {
    const res = await app.inject({ method: method as 'GET' | 'POST', url, headers: AUTH });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ statusCode: 400, message: `${name} must be given once` });
  });

  // Each unknown parameter was a line of the 400: 11 KB of names made a 119 KB answer and up to
  // 190 ms of CPU, on the summary, which is not rate limited.
  it.each([['/is-bitcoin-lit'], ['/series/price']])('GET %s with 17 parameters or 2,000 is a short 400', async (path) => {
    for (const n of [17, 2000]) {
      const query = Array.from({ length: n }, (_, i) => `p${i}=1`).join('&');
      const res = await app.inject({ method: 'GET', url: `${path}?${query}` });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ statusCode: 400, message: `at most 16 query parameters are accepted (got ${n})` });
    }
    // Sixteen unknown ones are still named, one by one.
    const res = await app.inject({ method: 'GET', url: `${path}?${Array.from({ length: 16 }, (_, i) => `p${i}=1`).join('&')}` });
    expect(res.json().message).toHaveLength(16);
  });

  it.each([['/series?hours=3'], ['/verdict?since=1'], ['/is-bitcoin-lit?hours=3']])('GET %s, an endpoint that takes no parameters, is a 400 naming the one given', async (url) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ statusCode: 400, message: [`property ${url.split('?')[1].split('=')[0]} should not exist`] });
  });

  // POST /refresh takes its options in the query; its body may only be empty or {}. A JSON
  // scalar or a text body used to pass validation (ValidationPipe checks objects only) and run.
  it.each([
    ['application/json', '"x"'],
    ['application/json', '5'],
    ['application/json', 'true'],
    ['text/plain', 'hello'],
  ])('POST /refresh with a %s body %s is a 400 and runs nothing', async (type, payload) => {
    const calls = upstream.calls;
    const res = await app.inject({ method: 'POST', url: '/refresh', headers: { ...AUTH, 'content-type': type }, payload });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ statusCode: 400, error: 'Bad Request', message: 'the body must be empty or {}; options go in the query (e.g. ?full=true)' });
    expect(upstream.calls).toBe(calls);
  });

  it.each([
    ['an object', `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`],
    ['an array', `${'['.repeat(5000)}${']'.repeat(5000)}`],
  ])('POST /refresh with a JSON body of %s nested 5000 deep is a 400 (it overflowed the stack: a 500)', async (_kind, payload) => {
    const calls = upstream.calls;
    const res = await app.inject({ method: 'POST', url: '/refresh', headers: { ...AUTH, 'content-type': 'application/json' }, payload });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ statusCode: 400, error: 'Bad Request', message: 'the JSON body is not parsed: nested more than 16 levels deep' });
    expect(upstream.calls).toBe(calls);
  });

  it.each([
    ['application/json', '{}'],
    ['text/plain', ''],
  ])('POST /refresh with a %s body "%s" runs', async (type, payload) => {
    const res = await app.inject({ method: 'POST', url: '/refresh', headers: { ...AUTH, 'content-type': type }, payload });
    expect(res.statusCode).toBe(200);
  });

  // Node hands any request with `Connection: Upgrade` to the WebSocket adapter, which used to
  // drop the connection without a word unless it was a handshake for /ws/notifications: a GET
  // offering `Upgrade: h2c` (what `curl --http2` sends) got no answer at all.
  it.each([
    ['/health/live', 'h2c', 200],
    ['/health/live', 'websocket', 200],
    ['/nope', 'websocket', 404],
    ['/ws/other', 'websocket', 404],
  ])('GET %s with Upgrade: %s is answered as a plain request (%i), then the connection closed', async (path, protocol, status) => {
    const raw = await rawExchange(
      port,
      [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: Upgrade, HTTP2-Settings', `Upgrade: ${protocol}`, 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', ''].join('\r\n'),
    );
    expect(statusOf(raw)).toBe(status);
    expect(raw).toMatch(/\r\nconnection: close\r\n/i);
    if (status >= 400) expect(bodyOf(raw)).toMatchObject({ statusCode: status, error: 'Not Found' });
  });

  // Node's optimizeEmptyRequests (tried for issue 16) ended the body stream of such a request,
  // while Fastify still waited for its body: on Node 24 and 26 it was never answered.
  it.each(['application/json', 'text/plain'])('a POST with Content-Type %s and no length header is answered at once', async (type) => {
    const raw = await rawExchange(port, ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', `Content-Type: ${type}`, 'Connection: close', '', ''].join('\r\n'));
    expect(statusOf(raw)).toBeGreaterThanOrEqual(400);
    expect(statusOf(raw)).toBeLessThan(500);
  });

  // Node hands such a request over as soon as it is parsed, while the answer to the one before
  // it on the connection may still be on its way: serving it then threw ERR_HTTP_SOCKET_ASSIGNED
  // out of the socket's data handler and took the process down.
  it('an Upgrade request pipelined behind a request still being answered is answered after it, in order', async () => {
    const plain = ['GET /health/live HTTP/1.1', 'Host: 127.0.0.1', '', ''].join('\r\n');
    const upgrade = ['GET /verdict HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: h2c', '', ''].join('\r\n');
    const raw = await rawExchange(port, plain + plain + upgrade);
    const statuses = [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 200, 200]);
    expect(raw.indexOf('"status":"ok"')).toBeLessThan(raw.lastIndexOf('HTTP/1.1 200'));
    expect(raw.slice(raw.lastIndexOf('HTTP/1.1 200'))).toMatch(/\r\nconnection: close\r\n/i);
    // Still serving.
    expect((await fetch(`http://127.0.0.1:${port}/health/live`)).status).toBe(200);
  });

  it('a WebSocket handshake pipelined behind a request still being answered gets its 101 after that answer, then works', async () => {
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    socket.on('data', (chunk: Buffer) => (raw += chunk.toString('latin1')));
    const handshake = ['GET /ws/notifications HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', ''];
    socket.write(['GET /health/live HTTP/1.1', 'Host: 127.0.0.1', '', ''].join('\r\n') + handshake.join('\r\n'));
    try {
      await waitFor('the 101', () => raw.includes('101 Switching Protocols'));
      expect(raw.startsWith('HTTP/1.1 200 ')).toBe(true);
      expect(raw.indexOf('"status":"ok"')).toBeLessThan(raw.indexOf('HTTP/1.1 101'));
      // The socket was read while it waited, then handed on: the gateway reads what comes next.
      socket.write(Buffer.from('\x81\x82\x00\x00\x00\x00hi', 'latin1')); // a masked text frame: clients send none
      await waitFor('a close frame with 1008 (policy violation)', () => raw.includes('\x88') && raw.slice(raw.indexOf('\x88') + 2).startsWith('\x03\xf0'));
    } finally {
      socket.destroy();
    }
  });

  it('an Upgrade request with a body (not a WebSocket handshake) is a 400 in the API shape', async () => {
    const body = '{"full":true}';
    const raw = await rawExchange(
      port,
      ['POST /refresh HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: h2c', 'Content-Type: application/json', `Content-Length: ${body.length}`, '', body].join('\r\n'),
    );
    expect(statusOf(raw)).toBe(400);
    expect(bodyOf(raw)).toMatchObject({ statusCode: 400, error: 'Bad Request' });
    expect(typeof bodyOf(raw).requestId).toBe('string');
  });

  it.each([
    ['no Sec-WebSocket-Key', ['Upgrade: websocket', 'Sec-WebSocket-Version: 13'], 'Missing or invalid Sec-WebSocket-Key header'],
    ['a bad Sec-WebSocket-Version', ['Upgrade: websocket', 'Sec-WebSocket-Version: 99', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='], 'Missing or invalid Sec-WebSocket-Version header'],
    ['two protocols in Upgrade', ['Upgrade: websocket, h2c', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='], 'Invalid Upgrade header'],
  ])('a WebSocket handshake at /ws/notifications with %s is a 400 in the API shape', async (_, headers, message) => {
    const raw = await rawExchange(port, ['GET /ws/notifications HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', ...headers, '', ''].join('\r\n'));
    expect(statusOf(raw)).toBe(400);
    expect(raw).toMatch(/\r\ncontent-type: application\/json/i);
    expect(bodyOf(raw)).toMatchObject({ statusCode: 400, error: 'Bad Request', message });
    expect(typeof bodyOf(raw).requestId).toBe('string');
  });

  it('the WebSocket at /ws/notifications still opens', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/notifications?x=1`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.close();
  });

  // A client's protocol error (here a frame over maxPayload) closes its socket; it is the
  // client's fault, so not an error-level log line each time (any client could flood the log).
  it('a WebSocket frame over 4 KiB closes the socket (1009) without an error-level log line', async () => {
    // Resolves with the level of the first log line about it.
    let logged!: (level: string) => void;
    const level = new Promise<string>((resolve) => (logged = resolve));
    const errors = jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => {
      if (String(message).includes('Max payload size exceeded')) logged('error');
    });
    const warns = jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
      if (String(message).includes('Max payload size exceeded')) logged('warn');
    });
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/notifications`);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const code = await new Promise<number>((resolve) => {
        ws.once('close', (c) => resolve(c));
        ws.send('x'.repeat(5000));
      });
      expect(code).toBe(1009);
      expect(await level).toBe('warn'); // a dropped client, not an error
    } finally {
      errors.mockRestore();
      warns.mockRestore();
    }
  });
});
