import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { type IncomingHttpHeaders, request } from 'node:http';
import { connect, Socket } from 'node:net';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { NotificationsService } from '../src/notifications/notifications.service.js';
import { ThrottleService } from '../src/throttle/throttle.service.js';
import { bootApp, postRefresh } from './support/app.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { RedisServerProcess } from './support/redis-server.js';
import { listen, silentWebSocket, SseClient, WsClient } from './support/streams.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { waitFor } from './support/wait.js';

const fixture = loadFixture();
const newest = new Date(Math.max(...fixture.map((r) => Math.trunc((r.timestamp as number) * 1000)))).toISOString();

describe('live notifications across instances (e2e, real Redis)', () => {
  const prefix = uniquePrefix('notify');
  let redis: Redis;
  let upstream: FakeUpstream;
  let a: NestFastifyApplication; // ingests
  let b: NestFastifyApplication; // streams
  let port: number;
  const clients: { close(): void }[] = [];
  const sse = async () => {
    const c = await SseClient.open(port);
    clients.push(c);
    return c;
  };
  const ws = async () => {
    const c = await WsClient.open(port);
    clients.push(c);
    return c;
  };
  const notificationsOfB = () => b.get(NotificationsService);
  let sseClient: SseClient;
  let wsClient: WsClient;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    upstream = await new FakeUpstream(fixture).start();
    const env = { REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: upstream.url };
    a = await bootApp(env);
    // Heartbeats every second: quick to test, yet a client in this process paused by a loaded
    // machine answers its pings before two go unanswered.
    b = await bootApp({ ...env, NOTIFY_HEARTBEAT_MS: '1000', NOTIFY_MAX_BUFFER_BYTES: '65536' });
    port = await listen(b);
    // Two clients of B that every test below reads (so each test can also run alone).
    sseClient = await sse();
    wsClient = await ws();
    await waitFor('both clients registered on B', () => notificationsOfB().clientCount === 2);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await a?.close();
    await b?.close();
    await upstream?.stop();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('delivers an ingest on instance A to SSE and WebSocket clients of instance B, with counts and the fresh summary', async () => {
    expect(sseClient.response.statusCode).toBe(200);
    expect(sseClient.response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(sseClient.response.headers['cache-control']).toBe('no-cache, no-transform');

    const refresh = await postRefresh(a);
    expect(refresh.statusCode).toBe(200);
    const report = refresh.json();
    expect(report.stored).toBe(4948);

    const onSse = await sseClient.next((m) => m.event === 'ingest', 'ingest event over SSE');
    const onWs = await wsClient.next((m) => m.data.type === 'ingest', 'ingest event over WebSocket');
    const summary = (await b.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
    expect(summary.hourly_average_of_averages).toHaveLength(3);
    // The event carries the source's own report (POST /refresh lists it under sources).
    const expected = { type: 'ingest', source: 'senticrypt-v1', latestSampleTime: newest, stored: 4948, report: report.sources[0].report, summary };
    expect(report.latestSampleTime).toBe(newest);
    expect(onSse.data).toEqual(expected);
    expect(onSse.id).toMatch(/^\d+$/);
    expect(onWs.data).toEqual(expected);
  });

  it('sends nothing for an ingest that stores nothing, and the next one that stores something', async () => {
    // The fixture stored (by the test above, or here when this test runs alone) and its event
    // seen, so the events below are that one's and what this test causes.
    const first = (await postRefresh(a)).json();
    if (first.stored > 0) {
      await sseClient.next((m) => m.event === 'ingest' && m.data.stored === first.stored, 'the fixture ingest over SSE');
      await wsClient.next((m) => m.data.type === 'ingest' && m.data.stored === first.stored, 'the fixture ingest over WebSocket');
    }
    const fromSse = sseClient.ofType('ingest').length;
    const fromWs = wsClient.ofType('ingest').length;
    const noop = (await postRefresh(a)).json();
    expect(noop.stored).toBe(0);

    // One record newer than the fixture: pub/sub keeps the publisher's order, so had the no-op
    // run published, its event would arrive before this one.
    const last = fixture[fixture.length - 1];
    upstream.mode = { kind: 'json', body: [...fixture, { ...last, timestamp: (last.timestamp as number) + 30, btc_price: '34000.5' }] };
    const one = (await postRefresh(a)).json();
    expect(one.stored).toBe(2);
    await waitFor('the next ingest event', () => sseClient.ofType('ingest').length > fromSse && wsClient.ofType('ingest').length > fromWs);
    for (const c of [sseClient, wsClient]) {
      const events = c.ofType('ingest');
      expect(events.map((e) => e.data.stored)).toEqual([4948, 2]);
      expect(events[1].data.report).toEqual(one.sources[0].report);
    }
  });

  it('sends heartbeats on both transports', async () => {
    const beat = await sseClient.next((m) => m.event === 'heartbeat', 'SSE heartbeat');
    expect(Object.keys(beat.data).sort()).toEqual(['time', 'type']);
    expect(new Date(beat.data.time as string).toISOString()).toBe(beat.data.time);
    const wsBeat = await wsClient.next((m) => m.data.type === 'heartbeat', 'WebSocket heartbeat');
    expect(wsBeat.data).toEqual({ type: 'heartbeat', time: expect.any(String) });
    // Each SSE message has its own increasing id.
    const ids = sseClient.received.map((m) => Number(m.id));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
  });

  it('drops a client that stops reading without holding up the others', async () => {
    // A raw TCP client that sends the request and never reads the response.
    const slow: Socket = connect({ host: '127.0.0.1', port });
    clients.push({ close: () => slow.destroy() });
    await new Promise<void>((resolve) => slow.once('connect', () => resolve()));
    slow.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    slow.pause();
    await waitFor('the slow client registered', () => notificationsOfB().clientCount === 3);
    const droppedBefore = notificationsOfB().stats.dropped;

    // Big events fill the kernel's socket buffers first; then Node's own buffer grows past
    // NOTIFY_MAX_BUFFER_BYTES and the client is dropped. Bounded: at most 40 MB are sent.
    const padding = 'x'.repeat(256 * 1024);
    let sent = 0;
    while (notificationsOfB().clientCount === 3 && sent < 160) {
      sent++;
      const event = { type: 'ingest', latestSampleTime: '2021-07-07T17:30:48.000Z', stored: 0, report: { padding }, summary: null, seq: sent };
      await redis.publish(`${prefix}:events`, JSON.stringify(event));
      await sseClient.next((m) => m.data.seq === sent, `big event ${sent} over SSE`);
      await wsClient.next((m) => m.data.seq === sent, `big event ${sent} over WebSocket`);
    }
    expect(notificationsOfB().clientCount).toBe(2);
    expect(notificationsOfB().stats).toEqual({ sse: 1, ws: 1, dropped: droppedBefore + 1 });
    // The server closed that connection: reading what it holds ends in EOF.
    const closed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    slow.on('error', () => undefined).resume();
    await closed;
    // The others got every event, in order.
    const seqs = (c: SseClient | WsClient) => c.received.filter((m) => typeof m.data.seq === 'number').map((m) => m.data.seq);
    const all = Array.from({ length: sent }, (_, i) => i + 1);
    expect(seqs(sseClient)).toEqual(all);
    expect(seqs(wsClient)).toEqual(all);
  }, 60_000);

  it('drops a WebSocket client that does not answer pings', async () => {
    const droppedBefore = notificationsOfB().stats.dropped;
    const mute = await WsClient.open(port, { autoPong: false });
    clients.push(mute);
    // Two heartbeats ping it, the third finds neither answered and drops it.
    await waitFor('the server to drop the silent client', () => mute.closeCode);
    expect(mute.closeCode).toBe(1006); // terminated, no close frame
    await waitFor('the drop counted', () => notificationsOfB().stats.dropped === droppedBefore + 1);
    expect(notificationsOfB().stats).toEqual({ sse: 1, ws: 1, dropped: droppedBefore + 1 });
    expect(mute.ofType('heartbeat').length).toBeGreaterThanOrEqual(2);
  });

  it('ignores malformed messages on the channel', async () => {
    const from = sseClient.received.length;
    await redis.publish(`${prefix}:events`, 'not json');
    await redis.publish(`${prefix}:events`, JSON.stringify({ type: 'status', redis: 'down' }));
    await redis.publish(`${prefix}:events`, JSON.stringify({ type: 'ingest', latestSampleTime: 'x', stored: 1, report: {}, summary: null, marker: 'ok' }));
    await sseClient.next((m) => m.data.marker === 'ok', 'the well-formed event');
    expect(sseClient.received.slice(from).filter((m) => m.event !== 'heartbeat').map((m) => m.data.marker)).toEqual(['ok']);
  });

  it('documents /events in Swagger as text/event-stream with the event schemas', async () => {
    const doc = (await b.inject({ method: 'GET', url: '/docs-json' })).json();
    const op = doc.paths['/events'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['text/event-stream']);
    expect(op.responses['200'].content['text/event-stream'].schema.oneOf).toEqual([
      { $ref: '#/components/schemas/IngestEventDto' },
      { $ref: '#/components/schemas/VerdictChangedEventDto' },
      { $ref: '#/components/schemas/HeartbeatEventDto' },
      { $ref: '#/components/schemas/StatusEventDto' },
    ]);
    // Each `type` a client reads names its schema (without a mapping it would have to be the schema's name).
    const { discriminator } = op.responses['200'].content['text/event-stream'].schema;
    expect(discriminator.propertyName).toBe('type');
    const byType = Object.entries(discriminator.mapping as Record<string, string>).map(([type, ref]) => [type, doc.components.schemas[ref.split('/').pop() as string].properties.type.enum]);
    expect(byType).toEqual([['ingest', ['ingest']], ['verdict.changed', ['verdict.changed']], ['heartbeat', ['heartbeat']], ['status', ['status']]]);
    expect(Object.keys(op.responses['503'].content)).toEqual(['application/json']);
    expect(op.responses['503'].content['application/json'].schema.$ref).toBe('#/components/schemas/ErrorResponseDto');
    const schemas = doc.components.schemas;
    expect(Object.keys(schemas.IngestEventDto.properties).sort()).toEqual(['latestSampleTime', 'report', 'source', 'stored', 'summary', 'type']);
    expect(schemas.StatusEventDto.properties.redis.enum).toEqual(['down', 'up']);
    expect(Object.keys(schemas.VerdictChangedEventDto.properties).sort()).toEqual(['id', 'previous', 'since', 'summary', 'type', 'verdict']);
    expect(schemas.VerdictChangedEventDto.properties.verdict.enum).toEqual(['lit', 'cold', 'mixed', 'unknown']);
  });
});

describe('notification client cap (e2e)', () => {
  const prefix = uniquePrefix('notify-cap');
  let redis: Redis;
  let app: NestFastifyApplication;
  let port: number;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', NOTIFY_MAX_CLIENTS: '1' });
    port = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('refuses clients over NOTIFY_MAX_CLIENTS: 503 JSON with Retry-After, for SSE and for a WebSocket handshake before its 101', async () => {
    const first = await SseClient.open(port);
    try {
      await waitFor('first client registered', () => app.get(NotificationsService).clientCount === 1);
      const res = await app.inject({ method: 'GET', url: '/events' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json()).toEqual({
        statusCode: 503,
        error: 'Service Unavailable',
        message: 'Too many notification clients on this instance; try again later',
        requestId: res.headers['x-request-id'],
      });
      const refused = await WsClient.refused(port, { headers: { 'x-request-id': 'ws-full' } });
      expect(refused).toMatchObject({
        statusCode: 503,
        headers: { 'retry-after': '5', 'content-type': 'application/json; charset=utf-8' },
        body: { statusCode: 503, error: 'Service Unavailable', message: 'Too many notification clients on this instance; try again later', requestId: 'ws-full' },
      });
      expect(app.get(NotificationsService).clientCount).toBe(1);
    } finally {
      first.close();
    }
    // The slot is freed when the client goes: a new one is accepted.
    await waitFor('slot released', () => app.get(NotificationsService).clientCount === 0);
    // HEAD answers with the headers and takes no slot.
    const head = await app.inject({ method: 'HEAD', url: '/events' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(app.get(NotificationsService).clientCount).toBe(0);
    const again = await WsClient.open(port);
    await waitFor('new client accepted', () => app.get(NotificationsService).clientCount === 1);
    expect(again.closeCode).toBeUndefined();
    again.close();
  });
});

/** A WebSocket handshake on a raw socket, then `frame` in its packet or once the 101 is in; resolves when the server has closed the connection. */
async function rawWebSocket(port: number, headers: Record<string, string>, frame: string, when: 'with' | 'after'): Promise<void> {
  const silent = await silentWebSocket(port, headers, when === 'with' ? frame : '');
  if (when === 'after') {
    await waitFor('the 101', () => silent.head().includes('101 Switching Protocols'));
    silent.socket.write(Buffer.from(frame, 'latin1'));
  }
  await waitFor('the server closed the socket', () => silent.closed(), { timeoutMs: 5000 });
}

describe('notification clients per address, and what a WebSocket client may send (e2e)', () => {
  const prefix = uniquePrefix('notify-per-ip');
  let redis: Redis;
  let app: NestFastifyApplication;
  let port: number;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', NOTIFY_MAX_CLIENTS_PER_IP: '2', TRUST_PROXY: 'true' });
    port = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  // Node reads no peer address for a connection the client reset before its request was
  // handled; the gateway split that undefined address, and rxjs rethrew the error from a timer:
  // one such client took the process down. /events answered it a 500 with an error-level log.
  it('clients that reset the connection right after their request take nothing down (WebSocket and SSE)', async () => {
    const requests = [
      'GET /ws/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    ];
    for (let i = 0; i < 10; i++) {
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(requests[i % 2]);
      socket.resetAndDestroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    const ws = await WsClient.open(port); // still accepting WebSocket clients
    ws.close();
    await waitFor('no client left', () => app.get(NotificationsService).clientCount === 0);
  });

  // A response pipelined behind another has no socket yet; Node 20 never emits its 'close' when
  // the connection closes (Node 24 does), so the stream's slot was never released: a client
  // could fill NOTIFY_MAX_CLIENTS with two requests per connection.
  it('SSE requests pipelined on one connection release their slots when it closes', async () => {
    const service = app.get(NotificationsService);
    const sse = 'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n';
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(sse + sse);
    await waitFor('both streams registered', () => service.clientCount === 2);
    socket.destroy();
    await waitFor('no client left', () => service.clientCount === 0);
  });

  /** With the address's slots taken (`forwarded` as the proxy names it, else the peer): /events and a WebSocket handshake are each a 429. */
  const expectRefused = async (forwarded?: string) => {
    const headers: Record<string, string> = forwarded === undefined ? {} : { 'x-forwarded-for': forwarded };
    const res = await app.inject({ method: 'GET', url: '/events', headers });
    expect(res.statusCode).toBe(429);
    const refused = await WsClient.refused(port, { headers });
    expect(refused).toMatchObject({ statusCode: 429, headers: { 'retry-after': '5' }, body: { statusCode: 429, error: 'Too Many Requests', message: res.json().message } });
    return res;
  };

  it('one address gets NOTIFY_MAX_CLIENTS_PER_IP slots (429 for SSE and for a WebSocket handshake, before its 101); another address, as the rate limit sees it, still gets in', async () => {
    const service = app.get(NotificationsService);
    const sse = await SseClient.open(port);
    const ws = await WsClient.open(port);
    try {
      await waitFor('two clients registered', () => service.clientCount === 2);
      const res = await expectRefused();
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json()).toMatchObject({ message: 'Too many notification clients from this address (NOTIFY_MAX_CLIENTS_PER_IP: 2); try again later' });
      // Behind a proxy (TRUST_PROXY), the client is the X-Forwarded-For address, for WebSockets too.
      const other = await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.7, 10.0.0.1' } });
      await waitFor('the other address registered', () => service.clientCount === 3);
      expect(other.closeCode).toBeUndefined();
      const otherSse = await SseClient.open(port, { 'x-forwarded-for': '203.0.113.8' });
      expect(otherSse.response.statusCode).toBe(200);
      await waitFor('the other address’s stream registered', () => service.clientCount === 4);
      otherSse.close();
      other.close();
    } finally {
      sse.close();
      ws.close();
    }
    await waitFor('slots released', () => service.clientCount === 0);
  });

  it('counts an IPv6 client\'s notification slots by its /64', async () => {
    const service = app.get(NotificationsService);
    const first = await WsClient.open(port, { headers: { 'x-forwarded-for': '2001:db8:1:2::1' } });
    const second = await SseClient.open(port, { 'x-forwarded-for': '2001:db8:1:2::2' });
    try {
      await waitFor('two clients registered', () => service.clientCount === 2);
      await expectRefused('2001:db8:1:2:ffff::3');
      const elsewhere = await WsClient.open(port, { headers: { 'x-forwarded-for': '2001:db8:1:3::1' } });
      await waitFor('another /64 registered', () => service.clientCount === 3);
      elsewhere.close();
    } finally {
      first.close();
      second.close();
    }
    await waitFor('slots released', () => service.clientCount === 0);
  });

  it('an X-Forwarded-For client with braces is rate limited like any (its key never chooses nor breaks a cluster slot)', async () => {
    for (const forwarded of ['a{}b', '{x}', '}{', '%7B']) {
      const res = await app.inject({ method: 'GET', url: '/verdict', headers: { 'x-forwarded-for': forwarded } });
      expect([forwarded, res.statusCode]).toEqual([forwarded, 200]);
      expect(res.headers['x-ratelimit-remaining']).toBeDefined();
    }
  });

  it('closes a WebSocket client that sends a message (1008), and frees its slot', async () => {
    const service = app.get(NotificationsService);
    const client = await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.20' } });
    await waitFor('client registered', () => service.clientCount === 1);
    client.ws.send('{"event":"subscribe","data":"anything"}');
    await waitFor('closed for sending', () => client.closeCode);
    expect(client.closeCode).toBe(1008);
    await waitFor('slot released', () => service.clientCount === 0);
  });

  it('closes a WebSocket client that pings more than a keepalive needs (1008): each ping costs a pong it may never read', async () => {
    const service = app.get(NotificationsService);
    const calm = await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.21' } });
    const flood = await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.22' } });
    await waitFor('clients registered', () => service.clientCount === 2);
    for (let i = 0; i < 3; i++) calm.ws.ping();
    for (let i = 0; i < 50; i++) flood.ws.ping();
    await waitFor('closed for pinging', () => flood.closeCode);
    expect(flood.closeCode).toBe(1008);
    await waitFor('its slot released', () => service.clientCount === 1);
    expect(calm.closeCode).toBeUndefined();
    calm.close();
    await waitFor('slots released', () => service.clientCount === 0);
  });

  // WsAdapter logs every WebSocket error at error level; each of these is the client's doing.
  it('a client\'s WebSocket protocol error is no error-level log line: an unmasked frame in the handshake\'s packet, after it, or behind a refused handshake', async () => {
    const service = app.get(NotificationsService);
    const errors: string[] = [];
    const spy = jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => void errors.push(String(message).slice(0, 200)));
    const holders: WsClient[] = [];
    try {
      const unmasked = '\x81\x02hi'; // RFC 6455 §5.1: a client masks every frame
      await rawWebSocket(port, { 'X-Forwarded-For': '203.0.113.40' }, unmasked, 'with');
      await rawWebSocket(port, { 'X-Forwarded-For': '203.0.113.41' }, unmasked, 'after');
      holders.push(await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.42' } }), await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.42' } }));
      await waitFor('two clients registered', () => service.clientCount === 2);
      await rawWebSocket(port, { 'X-Forwarded-For': '203.0.113.42' }, unmasked, 'with'); // refused: over its address's two slots
    } finally {
      holders.forEach((h) => h.close());
      spy.mockRestore();
    }
    expect(errors).toEqual([]);
    await waitFor('no client left', () => service.clientCount === 0);
  });

  // `ws` parses every frame it had read before the close: each ping after it logged a warning.
  it('a burst of pings in one write is closed with one warning, not one per ping', async () => {
    const warnings: string[] = [];
    const spy = jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => void warnings.push(String(message)));
    try {
      await rawWebSocket(port, { 'X-Forwarded-For': '203.0.113.45' }, '\x89\x80\x00\x00\x00\x00'.repeat(2000), 'after'); // masked, empty pings
    } finally {
      spy.mockRestore();
    }
    expect(warnings.filter((w) => w.includes('pinged too often'))).toHaveLength(1);
    await waitFor('no client left', () => app.get(NotificationsService).clientCount === 0);
  });

  it('chooses no subprotocol when a client offers some: it speaks none (ws chose the first offered)', async () => {
    const silent = await silentWebSocket(port, { 'X-Forwarded-For': '203.0.113.31', 'Sec-WebSocket-Protocol': 'foo, bar' });
    try {
      await waitFor('the 101', () => silent.head().includes('\r\n\r\n'), { timeoutMs: 5000 });
      expect(silent.head()).toMatch(/^HTTP\/1\.1 101 /);
      expect(silent.head().toLowerCase()).not.toContain('sec-websocket-protocol');
    } finally {
      silent.socket.destroy();
    }
  });

  // Refused after its 101 (close code 1013), such a client cost a socket and a WebSocket, for a
  // second more when it never answered the close frame.
  it('answers a WebSocket handshake over its address\'s slots with a 429 instead of its 101, and closes the connection', async () => {
    const service = app.get(NotificationsService);
    const holders = [await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.30' } }), await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.30' } })];
    try {
      await waitFor('two clients registered', () => service.clientCount === 2);
      const silent = await silentWebSocket(port, { 'X-Forwarded-For': '203.0.113.30' });
      await waitFor('the server closed the socket', () => silent.closed(), { timeoutMs: 5000 });
      expect(silent.head()).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
      expect(silent.head()).toContain('"message":"Too many notification clients from this address (NOTIFY_MAX_CLIENTS_PER_IP: 2); try again later"');
      expect(service.clientCount).toBe(2);
    } finally {
      holders.forEach((h) => h.close());
    }
    await waitFor('slots released', () => service.clientCount === 0);
  });
});

describe('WebSocket handshakes and the rate limit (e2e)', () => {
  const prefix = uniquePrefix('notify-ws-rate');
  let redis: Redis;
  let app: NestFastifyApplication;
  let port: number;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', THROTTLE_LIMIT: '3', THROTTLE_TTL_MS: '60000', TRUST_PROXY: 'true', NOTIFY_MAX_CLIENTS_PER_IP: '1' });
    port = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  // Node hands a handshake from its 'upgrade' event to the gateway: Nest's guards never saw
  // one, so a client could open and close WebSockets as fast as it liked. Refused after its 101,
  // a flooding client still cost a socket and a WebSocket each time.
  it('counts each handshake against THROTTLE_LIMIT per client, as a GET, refused or not: over it, the API’s 429 with Retry-After instead of the 101; another client still gets in', async () => {
    const service = app.get(NotificationsService);
    const from = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });
    const admitted = await WsClient.open(port, from('203.0.113.60'));
    await waitFor('the first client registered', () => service.clientCount === 1);
    // Over the address's one slot: refused, and counted all the same.
    const refused = [await WsClient.refused(port, from('203.0.113.60')), await WsClient.refused(port, from('203.0.113.60'))];
    expect(refused.map((r) => [r.statusCode, r.body.message])).toEqual([
      [429, expect.stringMatching(/^Too many notification clients from this address/)],
      [429, expect.stringMatching(/^Too many notification clients from this address/)],
    ]);
    const over = await silentWebSocket(port, { 'X-Forwarded-For': '203.0.113.60', 'X-Request-Id': 'ws-over-limit' });
    const other = await WsClient.open(port, from('203.0.113.61'));
    try {
      await waitFor('answered and closed', () => over.closed(), { timeoutMs: 5000 });
      const [head, body] = over.head().split('\r\n\r\n');
      const headers = Object.fromEntries(head.split('\r\n').slice(1).map((line) => line.split(': ')).map(([k, v]) => [k.toLowerCase(), v]));
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 429 Too Many Requests');
      expect(headers).toMatchObject({
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
        'retry-after': expect.stringMatching(/^\d+$/),
        date: expect.stringMatching(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/),
        'x-request-id': 'ws-over-limit',
        'x-content-type-options': 'nosniff',
        connection: 'close',
      });
      expect(JSON.parse(body)).toEqual({
        statusCode: 429,
        error: 'Too Many Requests',
        message: `Too many requests; retry in ${headers['retry-after']} s`,
        requestId: 'ws-over-limit',
      });
      await waitFor('the other address registered', () => service.clientCount === 2);
      expect([admitted.closeCode, other.closeCode]).toEqual([undefined, undefined]);
      // A malformed handshake (another client: not over its limit) is the API's 400.
      const malformed = await silentWebSocket(port, { 'X-Forwarded-For': '203.0.113.63', 'Sec-WebSocket-Key': 'bad' });
      await waitFor('answered and closed', () => malformed.closed(), { timeoutMs: 5000 });
      expect(malformed.head()).toMatch(/^HTTP\/1\.1 400 /);
      // Every handshake's answer is timed as a request's would be, and the slots are counted.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const handshakes = (status: number) => new RegExp(`\\nhttp_request_duration_seconds_count\\{method="GET",route="/ws/notifications",status="${status}"\\} (\\d+)\\n`).exec(metrics)?.[1];
      expect([101, 429, 400].map(handshakes)).toEqual(['2', '3', '1']);
      expect(metrics).toContain('\nnotification_clients{transport="ws"} 2\n');
      expect(metrics).toContain('\nnotification_clients_refused_total{transport="ws",reason="address"} 2\n');
    } finally {
      [admitted, other].forEach((c) => c.close());
      over.socket.destroy();
    }
    await waitFor('no client left', () => service.clientCount === 0);
  });

  /** Holds the next handshake's rate-limit count until `release()`; `hit` is the spy (mockRestore it). */
  const holdNextCount = () => {
    let resolveHeld = () => undefined as void;
    const throttle = app.get(ThrottleService);
    const original = throttle.hit.bind(throttle);
    const hit = jest.spyOn(throttle, 'hit').mockImplementationOnce((...args) => new Promise<void>((resolve) => (resolveHeld = resolve)).then(() => original(...args)));
    return { hit, release: () => resolveHeld() };
  };

  it('times no 101 for a handshake whose client left while it was being counted (`ws` writes none)', async () => {
    const count = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/\nhttp_request_duration_seconds_count\{method="GET",route="\/ws\/notifications",status="101"\} (\d+)\n/.exec(text)?.[1] ?? 0);
    };
    const before = await count();
    const { hit, release } = holdNextCount();
    try {
      const leaving = await silentWebSocket(port, { 'X-Forwarded-For': '203.0.113.64' });
      await waitFor('its count started', () => hit.mock.calls.length === 1);
      leaving.socket.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 100));
      release();
      await new Promise((r) => setTimeout(r, 300));
      expect(leaving.head()).toBe('');
      expect(await count()).toBe(before);
      expect(app.get(NotificationsService).clientCount).toBe(0); // no slot kept for it
      // A client that stays gets its 101, timed.
      const staying = await WsClient.open(port, { headers: { 'x-forwarded-for': '203.0.113.65' } });
      staying.close();
      expect(await count()).toBe(before + 1);
    } finally {
      hit.mockRestore();
    }
  });

  it('frees the notification slot of a handshake whose client half-closed while it was being counted', async () => {
    const service = app.get(NotificationsService);
    const { hit, release } = holdNextCount();
    try {
      const leaving = await silentWebSocket(port, { 'X-Forwarded-For': '203.0.113.66' });
      await waitFor('its count started', () => hit.mock.calls.length === 1);
      leaving.socket.end();
      await new Promise((r) => setTimeout(r, 100));
      release();
      await waitFor('the server closed the socket', () => leaving.closed(), { timeoutMs: 5000 });
      expect(leaving.head()).toBe(''); // `ws` writes no 101 to it
      await waitFor('no slot kept for it', () => service.clientCount === 0, { timeoutMs: 3000 });
    } finally {
      hit.mockRestore();
    }
  });

  // An outage fails open (see the outage suite); anything else is a fault, a 500 as for a request.
  it('answers a handshake whose count fails for another reason with the API’s 500, without its 101', async () => {
    const hit = jest.spyOn(app.get(ThrottleService), 'hit').mockRejectedValueOnce(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'));
    const errors: string[] = [];
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => void errors.push(String(message)));
    try {
      const refused = await silentWebSocket(port, { 'X-Forwarded-For': '203.0.113.62', 'X-Request-Id': 'ws-count-failed' });
      await waitFor('answered and closed', () => refused.closed(), { timeoutMs: 5000 });
      const [head, body] = refused.head().split('\r\n\r\n');
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 500 Internal Server Error');
      expect(JSON.parse(body)).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'Internal server error', requestId: 'ws-count-failed' });
      expect(errors).toEqual([expect.stringMatching(/^WebSocket handshake: rate-limit count failed: Error: WRONGTYPE /)]);
    } finally {
      hit.mockRestore();
      logged.mockRestore();
    }
  });
});

describe('the SSE stream’s headers, and which pages may open the WebSocket (e2e)', () => {
  const prefix = uniquePrefix('notify-headers');
  let redis: Redis;
  let app: NestFastifyApplication;
  let port: number;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', CORS_ORIGINS: 'https://dash.example' });
    port = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('carries the API security headers, the request id and CORS, on GET and HEAD', async () => {
    const head = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', path: '/events', headers: { origin: 'https://dash.example', 'x-request-id': 'trace-sse-1' } }, (res) => {
        resolve(res.headers);
        req.destroy(); // the stream stays open otherwise
      });
      req.on('error', reject).end();
    });
    expect(head).toMatchObject({
      'content-type': 'text/event-stream; charset=utf-8',
      'x-request-id': 'trace-sse-1',
      'x-content-type-options': 'nosniff',
      'access-control-allow-origin': 'https://dash.example',
    });
    const res = await app.inject({ method: 'HEAD', url: '/events', headers: { 'x-request-id': 'trace-sse-2' } });
    expect(res.headers).toMatchObject({ 'x-request-id': 'trace-sse-2', 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY' });
  });

  // Browsers apply no CORS to a WebSocket: without this, a page of any site could read the
  // notifications of a service its visitor's browser reaches, as CORS keeps it from /events.
  it('refuses a WebSocket handshake from another site\'s page not in CORS_ORIGINS (403 before the 101); the same host, CORS_ORIGINS and clients without Origin get in', async () => {
    const service = app.get(NotificationsService);
    for (const origin of ['https://evil.example', 'null', `http://localhost:${port}`, 'https://dash.example.evil.example']) {
      const refused = await WsClient.refused(port, { headers: { origin, 'x-request-id': 'ws-cross-site' } });
      expect([origin, refused.statusCode, refused.headers['content-type']]).toEqual([origin, 403, 'application/json; charset=utf-8']);
      expect(refused.body).toEqual({
        statusCode: 403,
        error: 'Forbidden',
        message: 'This origin may not open the WebSocket: only the same host and CORS_ORIGINS may',
        requestId: 'ws-cross-site',
      });
    }
    expect(service.clientCount).toBe(0);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.payload).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/ws\/notifications",status="403"\} 4/);

    for (const origin of [undefined, 'https://dash.example', `http://127.0.0.1:${port}`]) {
      const client = await WsClient.open(port, { headers: origin === undefined ? {} : { origin } });
      try {
        await waitFor(`a client from ${origin} registered`, () => service.clientCount === 1);
        expect([origin, client.closeCode]).toEqual([origin, undefined]);
      } finally {
        client.close();
      }
      await waitFor('its slot released', () => service.clientCount === 0);
    }
  });
});

describe('notifications when Redis goes away (e2e, own redis-server)', () => {
  let server: RedisServerProcess;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let port: number;
  const clients: { close(): void }[] = [];

  beforeAll(async () => {
    server = await RedisServerProcess.start();
    upstream = await new FakeUpstream(fixture).start();
    app = await bootApp({
      REDIS_URL: server.url,
      REDIS_KEY_PREFIX: uniquePrefix('notify-loss'),
      SENTIMENT_API_URL: upstream.url,
      REDIS_RETRY_BASE_MS: '20',
      REDIS_RETRY_MAX_MS: '100',
      LOG_LEVEL: 'fatal', // the outage is expected; its warnings would only be noise here
    });
    port = await listen(app);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await app?.close();
    await upstream?.stop();
    await server?.destroy();
  });

  it('tells SSE and WebSocket clients when the subscription is lost and restored, then resumes', async () => {
    const sseClient = await SseClient.open(port);
    const wsClient = await WsClient.open(port);
    clients.push(sseClient, wsClient);
    await waitFor('both clients registered', () => app.get(NotificationsService).clientCount === 2);

    await server.stop();
    for (const c of [sseClient, wsClient]) {
      expect((await c.next((m) => m.data.type === 'status', 'status down')).data).toEqual({ type: 'status', redis: 'down' });
    }
    // A client connecting during the outage hears about it first thing.
    const late = await SseClient.open(port);
    clients.push(late);
    expect(late.received[0]?.data ?? (await late.next(() => true, 'first message')).data).toEqual({ type: 'status', redis: 'down' });

    await server.start(); // same port, same data
    for (const c of [sseClient, wsClient, late]) {
      const up = await c.next((m) => m.data.type === 'status' && m.data.redis === 'up', 'status up');
      expect(up.data).toEqual({ type: 'status', redis: 'up' });
    }
    expect(sseClient.ofType('status').map((m) => m.data.redis)).toEqual(['down', 'up']);

    // The subscription is back (ioredis re-subscribed): an ingest is delivered again.
    const report = await waitFor('an ingest once the main connection is back', async () => {
      const res = await postRefresh(app);
      return res.statusCode === 200 ? res.json<{ stored: number }>() : null;
    });
    expect(report.stored).toBe(4948);
    for (const c of [sseClient, wsClient, late]) {
      const event = await c.next((m) => m.data.type === 'ingest', 'ingest after the outage');
      expect(event.data).toMatchObject({ type: 'ingest', stored: 4948, latestSampleTime: newest });
    }
  });
});
