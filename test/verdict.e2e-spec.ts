import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { jest } from '@jest/globals';
import { Redis } from 'ioredis';
import { AlertsService, CATCH_UP_MS } from '../src/alerts/alerts.service.js';
import { verifySignature } from '../src/alerts/webhook-signature.js';
import { NotificationsService } from '../src/notifications/notifications.service.js';
import { RedisKeys } from '../src/redis/redis-keys.service.js';
import { VerdictEvents } from '../src/verdict/verdict.events.js';
import { RawReadGate } from '../src/timeseries/raw-read-gate.service.js';
import { TimeseriesService } from '../src/timeseries/timeseries.service.js';
import { VerdictService } from '../src/verdict/verdict.service.js';
import { bootApp as bootAnyApp, DATED_AHEAD, postRefresh } from './support/app.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { listen, SseClient, WsClient } from './support/streams.js';
import { FakeUpstream } from './support/upstream.js';
import { report, waitFor } from './support/wait.js';
import { ReceivedHook, WebhookReceiver } from './support/webhook-receiver.js';

const SECRET = 'verdict-e2e-secret-0123456789';
const HOUR_S = 3600;
const BASE_S = Date.UTC(2031, 2, 1) / 1000;
/** Every app here ingests records dated in 2031 (BASE_S). */
const bootApp = (env: Record<string, string>) => bootAnyApp({ ...DATED_AHEAD, ...env });
const iso = (hour: number, s = 60) => new Date((BASE_S + hour * HOUR_S + s) * 1000).toISOString();
const rec = (hour: number, price: number, mean: number, s = 60) => ({ timestamp: BASE_S + hour * HOUR_S + s, btc_price: String(price), mean });
// SentiCrypt v1 (a frozen feed: the summary's window ends at its newest sample, 3 hours).
// Hours 0-2 both rising: lit. Then hours 3-4 fall below hour 2: the window 2-4 is falling: cold.
const RISING = [rec(0, 100, 0.1), rec(1, 110, 0.2), rec(2, 120, 0.3)];
const FALLING = [...RISING, rec(3, 90, 0.0), rec(4, 80, -0.1)];
const LATER = [...FALLING, rec(4, 79, -0.2, 120)];
// Hours 4-6 both rising again: lit.
const RISING_AGAIN = [...FALLING, rec(5, 100, 0.1), rec(6, 110, 0.2)];
// Hours 6-8 both falling: cold again.
const FALLING_AGAIN = [...RISING_AGAIN, rec(7, 90, 0.0), rec(8, 80, -0.1)];

function webhookEnv(prefix: string, upstream: FakeUpstream, receivers: WebhookReceiver[], extra: Record<string, string> = {}) {
  return {
    REDIS_KEY_PREFIX: prefix,
    SENTIMENT_API_URL: upstream.url,
    ALERT_WEBHOOK_URLS: receivers.map((r) => r.url).join(','),
    ALERT_WEBHOOK_SECRET: SECRET,
    ALERT_WEBHOOK_POLL_MS: '50',
    ALERT_WEBHOOK_RETRY_BASE_MS: '50',
    ...extra,
  };
}

/** Records the first verdict (lit: no change, no event), then ingests the fall (cold: the change). */
async function flip(app: NestFastifyApplication, upstream: FakeUpstream): Promise<void> {
  upstream.mode = { kind: 'json', body: RISING };
  expect((await postRefresh(app)).statusCode).toBe(200);
  upstream.mode = { kind: 'json', body: FALLING };
  expect((await postRefresh(app)).statusCode).toBe(200);
}

const pendingOf = (app: NestFastifyApplication, receiver: WebhookReceiver) => {
  const alerts = app.get(AlertsService);
  const r = alerts.configured.find((c) => c.url === receiver.url);
  if (!r) throw new Error(`${receiver.url} is not configured`);
  return alerts.pending(r);
};

/** The value of one sample line of GET /metrics (0 when absent). */
async function metric(app: NestFastifyApplication, line: string): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

/**
 * What a webhook scenario needs: its own key prefix, the v1 feed (RISING) on loopback, its
 * receivers started; afterwards its apps closed, servers stopped and keys deleted.
 */
function webhookWorld(name: string, receivers: WebhookReceiver[]) {
  const world = { prefix: uniquePrefix(name), upstream: undefined as unknown as FakeUpstream, apps: [] as NestFastifyApplication[] };
  let redis: Redis;
  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    world.upstream = await new FakeUpstream(RISING).start();
    await Promise.all(receivers.map((r) => r.start()));
  });
  afterAll(async () => {
    for (const app of world.apps) await app.close();
    await world.upstream?.stop();
    await Promise.all(receivers.map((r) => r.stop()));
    await deleteKeys(redis, world.prefix);
    await redis.quit();
  });
  return world;
}

const header = (h: ReceivedHook, name: string) => h.headers[name.toLowerCase()] as string;

describe('verdict across two instances on one Redis (e2e)', () => {
  const prefix = uniquePrefix('verdict');
  let redis: Redis;
  let upstream: FakeUpstream;
  const receivers = [new WebhookReceiver(), new WebhookReceiver()];
  let a: NestFastifyApplication;
  let b: NestFastifyApplication;
  let sse: SseClient;
  let ws: WsClient;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    upstream = await new FakeUpstream(RISING).start();
    await Promise.all(receivers.map((r) => r.start()));
    const env = webhookEnv(prefix, upstream, receivers);
    a = await bootApp(env);
    // Raw reads of a week at most on b (the verdict series keeps 30 days).
    b = await bootApp({ ...env, SERIES_MAX_RAW_SPAN_MS: String(7 * 24 * 3_600_000) });
    sse = await SseClient.open(await listen(a));
    ws = await WsClient.open(await listen(b));
    await waitFor('the stream clients', () => a.get(NotificationsService).clientCount === 1 && b.get(NotificationsService).clientCount === 1);
  });

  afterAll(async () => {
    sse?.close();
    ws?.close();
    await a?.close();
    await b?.close();
    await upstream?.stop();
    await Promise.all(receivers.map((r) => r.stop()));
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('records the first verdict silently; a flip rising → falling ingested by both gives one event and one delivery per receiver', async () => {
    upstream.mode = { kind: 'json', body: RISING };
    expect((await postRefresh(a)).statusCode).toBe(200);
    expect((await b.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json()).toMatchObject({
      price_direction: 'rising',
      sentiment_direction: 'rising',
      verdict: 'lit',
      verdict_since: iso(2),
    });

    // Both instances ingest the fall at once and both evaluate it: Redis decides one change.
    upstream.mode = { kind: 'json', body: FALLING };
    const t0 = Date.now();
    const refreshes = await Promise.all([postRefresh(a), postRefresh(b)]);
    const refreshedMs = Date.now() - t0;
    const deliveredMs = waitFor('both receivers', () => receivers.every((r) => r.received.length > 0)).then(() => Date.now() - t0);
    expect(refreshes.map((r) => r.statusCode)).toEqual([200, 200]);
    // A later ingest event: whatever the flip published reached every client before it.
    upstream.mode = { kind: 'json', body: LATER };
    expect((await postRefresh(a)).json()).toMatchObject({ stored: 2 });
    const isLater = (m: { data: Record<string, unknown> }) => m.data.type === 'ingest' && m.data.latestSampleTime === iso(4, 120);
    await sse.next(isLater, 'the later ingest event over SSE');
    await ws.next(isLater, 'the later ingest event over WebSocket');

    const changes = sse.ofType('verdict.changed');
    expect(changes).toHaveLength(1);
    expect(ws.ofType('verdict.changed').map((m) => m.data)).toEqual([changes[0].data]);
    const event = changes[0].data as Record<string, unknown> & { summary: Record<string, unknown> };
    expect(changes[0].event).toBe('verdict.changed');
    expect(event).toMatchObject({ type: 'verdict.changed', id: expect.any(String), previous: 'lit', verdict: 'cold', since: iso(4) });
    expect(event.summary).toMatchObject({ as_of: iso(4), price_direction: 'falling', sentiment_direction: 'falling', verdict: 'cold', verdict_since: iso(4) });

    // One delivery per receiver: the queues are empty once delivered, and only one change was queued.
    report('verdict flip: both refreshes answered / both receivers had the webhook (ms)', { refreshedMs, deliveredMs: await deliveredMs });
    for (const r of receivers) await waitFor('the delivery', async () => r.received.length > 0 && (await pendingOf(a, r)) === 0);
    for (const r of receivers) {
      expect(r.received).toHaveLength(1);
      const [hook] = r.received;
      expect(JSON.parse(hook.body)).toEqual(event);
      expect(header(hook, 'content-type')).toBe('application/json');
      expect(header(hook, 'idempotency-key')).toBe(event.id);
      expect(header(hook, 'x-signature')).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(verifySignature(header(hook, 'x-signature'), hook.body, SECRET)).toBe(true);
      expect(verifySignature(header(hook, 'x-signature'), hook.body, 'another-secret-0123456789')).toBe(false);
    }
    const delivered = (await metric(a, 'alert_webhook_deliveries_total{outcome="delivered"}')) + (await metric(b, 'alert_webhook_deliveries_total{outcome="delivered"}'));
    expect(delivered).toBe(2);
    expect(await metric(b, `alert_webhook_pending{receiver="${b.get(AlertsService).configured[0].id}"}`)).toBe(0);
    // Unknown while Redis cannot be read: no value, rather than the last one held through the outage.
    const unreadable = jest.spyOn(b.get(AlertsService), 'pending').mockRejectedValue(new Error('Redis away'));
    try {
      expect((await b.inject({ method: 'GET', url: '/metrics' })).payload).not.toMatch(/^alert_webhook_pending\{/m);
    } finally {
      unreadable.mockRestore();
    }
    expect(await metric(b, `alert_webhook_pending{receiver="${b.get(AlertsService).configured[0].id}"}`)).toBe(0);

    // Every instance answers with the state kept in Redis.
    for (const app of [a, b]) {
      expect((await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json()).toMatchObject({ verdict: 'cold', verdict_since: iso(4) });
      expect((await app.inject({ method: 'GET', url: '/verdict' })).json()).toEqual({
        verdict: 'cold',
        since: iso(4),
        evaluated_as_of: iso(4, 120),
        changes: [{ id: event.id, time: iso(4), previous: 'lit', verdict: 'cold' }],
      });
    }
  });

  it('keeps the verdict as a series: GET /series/verdict gives the last verdict per bucket', async () => {
    // The feed of the test above (ingested here when this test runs alone).
    if ((await b.inject({ method: 'GET', url: '/verdict' })).json().verdict === null) {
      for (const body of [RISING, FALLING, LATER]) {
        upstream.mode = { kind: 'json', body };
        expect((await postRefresh(a)).statusCode).toBe(200);
      }
    }
    const get = async (query: string) => {
      const res = await b.inject({ method: 'GET', url: `/series/verdict${query}` });
      expect(res.statusCode).toBe(200);
      return res.json();
    };
    const hours = [
      { time: new Date((BASE_S + 2 * HOUR_S) * 1000).toISOString(), verdict: 'lit' },
      { time: new Date((BASE_S + 4 * HOUR_S) * 1000).toISOString(), verdict: 'cold' },
    ];
    expect(await get('?from=2031-03-01&to=2031-03-01T12:00:00Z&bucket=1h')).toEqual(hours);
    expect(await get('')).toEqual(hours); // to = the newest evaluation, from = 24 h before, 1h buckets
    expect(await get('?from=2031-03-01&to=2031-03-02&bucket=1d')).toEqual([{ time: '2031-03-01T00:00:00.000Z', verdict: 'cold' }]);
    expect(await get('?from=2031-03-02&to=2031-03-03')).toEqual([]);
  });

  it('documents GET /verdict and GET /series/verdict in Swagger, with the verdict names', async () => {
    const doc = (await b.inject({ method: 'GET', url: '/docs-json' })).json();
    expect(doc.paths['/series/verdict'].get.responses['200'].content['application/json'].schema).toEqual({
      type: 'array',
      items: { $ref: '#/components/schemas/VerdictPointDto' },
    });
    expect(doc.paths['/series/verdict'].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['bucket', 'from', 'to']);
    expect(doc.paths['/verdict'].get.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/VerdictStateDto');
    expect(doc.components.schemas.VerdictPointDto.properties.verdict.enum).toEqual(['lit', 'cold', 'mixed', 'unknown']);
    expect(doc.components.schemas.VerdictChangeDto.properties.previous.enum).toEqual(['lit', 'cold', 'mixed', 'unknown']);
  });

  it('answers a bad GET /series/verdict or GET /verdict query with a 400 naming the parameter', async () => {
    for (const [query, message] of [
      ['?aggregation=avg', 'aggregation'],
      ['?bucket=1x', 'bucket must be'],
      ['?from=2031-03-02&to=2031-03-01', 'must not be after'],
      ['?from=2031-03-01&to=2031-03-02&bucket=1ms', 'SERIES_MAX_POINTS'],
      ['?to=yesterday', 'to must be'],
      // The verdict series has no compactions: SERIES_MAX_RAW_SPAN_MS at most, counted up to its retention.
      ['?from=2031-01-01&to=2031-03-01&bucket=1d', 'The verdict history is computed from raw samples, and this range would read 30 days of them, more than SERIES_MAX_RAW_SPAN_MS allows (7 days)'],
    ]) {
      const res = await b.inject({ method: 'GET', url: `/series/verdict${query}` });
      expect([query, res.statusCode, JSON.stringify(res.json())]).toEqual([query, 400, expect.stringContaining(message)]);
    }
     // GET /verdict takes no parameters.
    const res = await b.inject({ method: 'GET', url: '/verdict?since=2031-03-01' });
    expect([res.statusCode, JSON.stringify(res.json())]).toEqual([400, expect.stringContaining('since')]);
  });
});

describe('webhook delivery: retries, a hanging receiver, a redirect (e2e)', () => {
  const prefix = uniquePrefix('alerts');
  let redis: Redis;
  let upstream: FakeUpstream;
  const flaky = new WebhookReceiver((n) => (n <= 2 ? { status: 500 } : { status: 200 }));
  const hang = new WebhookReceiver(() => 'hang');
  const ok = new WebhookReceiver();
  const target = new WebhookReceiver();
  const redirect = new WebhookReceiver(() => ({ status: 302, headers: { location: target.url } }));
  const servers = [flaky, hang, ok, target, redirect];
  let app: NestFastifyApplication;
  const logged: string[] = [];

  beforeAll(async () => {
    for (const level of ['log', 'warn', 'error'] as const) {
      jest.spyOn(Logger.prototype, level).mockImplementation((message: unknown) => {
        logged.push(String(message));
      });
    }
    redis = new Redis(REDIS_URL);
    upstream = await new FakeUpstream(RISING).start();
    await Promise.all(servers.map((r) => r.start()));
    // The hanging receiver's attempt outlasts the test: shutdown aborts it.
    app = await bootApp(webhookEnv(prefix, upstream, [flaky, hang, ok, redirect], { ALERT_WEBHOOK_TIMEOUT_MS: '60000' }));
    await flip(app, upstream);
  });

  afterAll(async () => {
    await app?.close();
    await upstream?.stop();
    await Promise.all(servers.map((r) => r.stop()));
    await deleteKeys(redis, prefix);
    await redis.quit();
    jest.restoreAllMocks();
  });

  it('a receiver that hangs delays neither the other receivers nor the ingest', async () => {
    await waitFor('the hanging receiver to be called', () => hang.open === 1);
    await waitFor('the other receivers', async () => ok.received.length === 1 && (await pendingOf(app, flaky)) === 0);
    upstream.mode = { kind: 'json', body: LATER };
    expect((await postRefresh(app)).json()).toMatchObject({ stored: 2 });
    // All of that happened while the hanging receiver's one attempt was still open.
    expect({ open: hang.open, calls: hang.received.length }).toEqual({ open: 1, calls: 1 });
    expect(await pendingOf(app, hang)).toBe(1);
  });

  it('retries a receiver answering 500 twice then 200: three requests, same body and idempotency key, each signed', async () => {
    await waitFor('three attempts', async () => flaky.received.length === 3 && (await pendingOf(app, flaky)) === 0);
    const keys = flaky.received.map((h) => header(h, 'idempotency-key'));
    expect(new Set(keys).size).toBe(1);
    expect(JSON.parse(flaky.received[0].body)).toMatchObject({ type: 'verdict.changed', id: keys[0], previous: 'lit', verdict: 'cold' });
    expect(new Set(flaky.received.map((h) => h.body)).size).toBe(1);
    for (const h of flaky.received) expect(verifySignature(header(h, 'x-signature'), h.body, SECRET)).toBe(true);
    expect(ok.received.map((h) => header(h, 'idempotency-key'))).toEqual([keys[0]]);
    expect(await metric(app, 'alert_webhook_deliveries_total{outcome="retry"}')).toBe(2);
    // The receiver's answers are never logged; our messages name the status.
    expect(logged.some((m) => m.includes('receiver answered HTTP 500'))).toBe(true);
    expect(logged.filter((m) => m.includes('RECEIVER-BODY'))).toEqual([]);
  });

  it('never follows a redirect: the delivery is given up, the target never called', async () => {
    await waitFor('the redirect to be judged', async () => redirect.received.length === 1 && (await pendingOf(app, redirect)) === 0);
    expect(target.received).toEqual([]);
    expect(await metric(app, 'alert_webhook_deliveries_total{outcome="rejected"}')).toBe(1);
    expect(logged.some((m) => m.includes('HTTP 302 (a redirect); not followed'))).toBe(true);
  });
});

describe('webhook delivery survives a restart between attempts (e2e)', () => {
  const receiver = new WebhookReceiver(() => ({ status: 503 }));
  const world = webhookWorld('alerts-restart', [receiver]);

  it('a pending delivery is sent by the next instance to start, with the same idempotency key', async () => {
    // The first retry is 1-2 s away: the instance is stopped between the attempts.
    const env = webhookEnv(world.prefix, world.upstream, [receiver], { ALERT_WEBHOOK_RETRY_BASE_MS: '2000' });
    const first = await bootApp(env);
    world.apps.push(first);
    await flip(first, world.upstream);
    await waitFor('the first attempt', () => receiver.received.length === 1);
    await first.close();
    world.apps.pop();
    const failed = receiver.received.length; // 1, or 2 if a retry got in before the stop

    receiver.reply = () => ({ status: 200 });
    const second = await bootApp(env);
    world.apps.push(second);
    await waitFor('the delivery by the restarted instance', async () => receiver.received.length > failed && (await pendingOf(second, receiver)) === 0);
    expect(receiver.received).toHaveLength(failed + 1);
    expect(new Set(receiver.received.map((h) => header(h, 'idempotency-key'))).size).toBe(1);
    expect(new Set(receiver.received.map((h) => h.body)).size).toBe(1);
    expect(await metric(second, 'alert_webhook_deliveries_total{outcome="delivered"}')).toBe(1);
  });
});

describe('a shutdown during an attempt releases its claim, and gives the attempt back (e2e)', () => {
  let answers: Array<{ status: number }> | undefined;
  const receiver = new WebhookReceiver(() => answers?.shift() ?? 'hang');
  const world = webhookWorld('alerts-release', [receiver]);

  it('the next instance sends it at once, not after the lease (2 × 60 s + 5 s here), with every attempt left', async () => {
    const env = webhookEnv(world.prefix, world.upstream, [receiver], { ALERT_WEBHOOK_TIMEOUT_MS: '60000', ALERT_WEBHOOK_MAX_ATTEMPTS: '2' });
    const first = await bootApp(env);
    world.apps.push(first);
    await flip(first, world.upstream);
    await waitFor('the attempt in flight', () => receiver.open === 1);
    await first.close();
    world.apps.pop();

    // The cut-short attempt does not count (a rolling deploy would use up attempts the receiver
    // never failed): a 503 and then a 200 are attempts 1 and 2 of 2, and it is delivered.
    answers = [{ status: 503 }, { status: 200 }];
    const second = await bootApp(env);
    world.apps.push(second);
    await waitFor('the delivery by the next instance', async () => receiver.received.length === 3 && (await pendingOf(second, receiver)) === 0);
    expect(new Set(receiver.received.map((h) => header(h, 'idempotency-key'))).size).toBe(1);
    expect(await metric(second, 'alert_webhook_deliveries_total{outcome="delivered"}')).toBe(1);
  });
});

describe('a change queued by nobody (its instance died first, or has no receivers) is caught up by the others (e2e)', () => {
  const receiver = new WebhookReceiver();
  const world = webhookWorld('alerts-catch-up', [receiver]);
  let quiet: NestFastifyApplication;
  let sender: NestFastifyApplication;

  beforeAll(async () => {
    const env = webhookEnv(world.prefix, world.upstream, [receiver]);
    // Makes the change but queues nothing: as if it died between the transition and the queueing.
    quiet = await bootApp({ ...env, ALERT_WEBHOOK_URLS: '', ALERT_WEBHOOK_SECRET: '' });
    sender = await bootApp(env);
    world.apps.push(quiet, sender);
  });

  it('delivers the last change once, the same event as published', async () => {
    await flip(quiet, world.upstream);
    const [change] = (await quiet.inject({ method: 'GET', url: '/verdict' })).json().changes;
    expect(change).toMatchObject({ previous: 'lit', verdict: 'cold', time: iso(4) });
    await waitFor('the caught-up delivery', async () => receiver.received.length > 0 && (await pendingOf(sender, receiver)) === 0);
    expect(receiver.received).toHaveLength(1);
    const [hook] = receiver.received;
    expect(header(hook, 'idempotency-key')).toBe(change.id);
    expect(JSON.parse(hook.body)).toMatchObject({ type: 'verdict.changed', id: change.id, previous: 'lit', verdict: 'cold', since: iso(4), summary: { verdict: 'cold', verdict_since: iso(4) } });
    expect(verifySignature(header(hook, 'x-signature'), hook.body, SECRET)).toBe(true);
  });
});

describe('the queue of a receiver is bounded: past ALERT_WEBHOOK_MAX_PENDING the oldest delivery is given up (e2e)', () => {
  const prefix = uniquePrefix('alerts-bounded');
  let redis: Redis;
  let upstream: FakeUpstream;
  const down = new WebhookReceiver(() => ({ status: 503 }));
  let app: NestFastifyApplication;
  const logged: string[] = [];

  beforeAll(async () => {
    jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => {
      logged.push(String(message));
    });
    redis = new Redis(REDIS_URL);
    upstream = await new FakeUpstream(RISING).start();
    await down.start();
    // Retries far away: every delivery stays pending for the whole test.
    app = await bootApp(webhookEnv(prefix, upstream, [down], { ALERT_WEBHOOK_MAX_PENDING: '1', ALERT_WEBHOOK_RETRY_BASE_MS: '600000' }));
  });

  afterAll(async () => {
    await app?.close();
    await upstream?.stop();
    await down.stop();
    await deleteKeys(redis, prefix);
    await redis.quit();
    jest.restoreAllMocks();
  });

  it('two changes for a receiver that is down: one kept (the newer), the older given up as dropped', async () => {
    await flip(app, upstream); // lit → cold
    await waitFor('the first attempt', () => down.received.length === 1);
    const first = (JSON.parse(down.received[0].body) as { id: string }).id;
    upstream.mode = { kind: 'json', body: RISING_AGAIN }; // cold → lit
    expect((await postRefresh(app)).statusCode).toBe(200);
    await waitFor('the first attempt of the second change', () => down.received.length === 2);
    const second = JSON.parse(down.received[1].body) as { id: string; previous: string; verdict: string };
    expect(second).toMatchObject({ previous: 'cold', verdict: 'lit' });
    expect(second.id).not.toBe(first);
    expect(await pendingOf(app, down)).toBe(1);
    expect(await metric(app, 'alert_webhook_deliveries_total{outcome="dropped"}')).toBe(1);
    expect(logged.filter((m) => m.includes('(dropped)'))).toEqual([expect.stringContaining(`webhook ${first} `)]);
  });
});

describe('the verdict series after Redis lost its data (e2e)', () => {
  const world = webhookWorld('verdict-lost', []);
  let app: NestFastifyApplication;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: world.prefix, SENTIMENT_API_URL: world.upstream.url });
    world.apps.push(app);
  });

  afterAll(() => redis.quit());

  it('records the next evaluation all the same (the series is created again, the sample kept)', async () => {
    expect((await postRefresh(app)).statusCode).toBe(200);
    // Every key of this deployment gone, whatever the backend's layout (like a restart of a
    // Redis without persistence) while the service keeps running.
    await deleteKeys(redis, world.prefix);
    world.upstream.mode = { kind: 'json', body: FALLING };
    expect((await postRefresh(app)).statusCode).toBe(200);
    const res = await app.inject({ method: 'GET', url: '/series/verdict?from=2031-03-01&to=2031-03-01T12:00:00Z' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual([{ time: new Date((BASE_S + 4 * HOUR_S) * 1000).toISOString(), verdict: 'cold' }]);
  });
});

describe('catch-up ages the last change by the Redis clock, not the instance clock (e2e)', () => {
  const world = webhookWorld('verdict-clock', []);
  let app: NestFastifyApplication;
  let redis: Redis;
  const redisNow = async () => {
    const [s, us] = await redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };
  /** lastChange(maxAgeMs) as an instance whose clock is `skewMs` off would compute it. */
  const lastChangeSkewed = async (skewMs: number, maxAgeMs: number) => {
    const realNow = Date.now.bind(Date);
    const spy = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + skewMs);
    try {
      return await app.get(VerdictService).lastChange(maxAgeMs);
    } finally {
      spy.mockRestore();
    }
  };

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    app = await bootApp({ REDIS_KEY_PREFIX: world.prefix, SENTIMENT_API_URL: world.upstream.url });
    world.apps.push(app);
  });

  afterAll(() => redis.quit());

  it('a clock hours ahead still gets a change of a moment ago; a clock hours behind does not get one older than the window', async () => {
    await flip(app, world.upstream);
    const [change] = (await app.inject({ method: 'GET', url: '/verdict' })).json().changes;
    const madeBy = await redisNow(); // the change was made at or before this, by the Redis clock
    const event = { type: 'verdict.changed', id: change.id, previous: 'lit', verdict: 'cold' };
    expect(await lastChangeSkewed(3 * HOUR_S * 1000, CATCH_UP_MS)).toMatchObject(event);
    expect(await lastChangeSkewed(-3 * HOUR_S * 1000, CATCH_UP_MS)).toMatchObject(event);
    // Older than a 50 ms window by the Redis clock: not caught up, however far behind this clock is.
    await waitFor('the change older than 50 ms by the Redis clock', async () => (await redisNow()) > madeBy + 50);
    expect(await lastChangeSkewed(-3 * HOUR_S * 1000, 50)).toBeNull();
    expect(await lastChangeSkewed(0, 50)).toBeNull();
  });
});

describe("a receiver's queue keys expire once no instance serves it, never while one does (e2e)", () => {
  const kept = new WebhookReceiver(() => ({ status: 503 }));
  const removed = new WebhookReceiver(() => ({ status: 503 }));
  const world = webhookWorld('alerts-key-ttl', [kept, removed]);
  let redis: Redis;
  const ttlMs = 3000;
  // Retries far away: each delivery stays pending (all seven keys of its receiver exist) throughout.
  const env = (receivers: WebhookReceiver[]) =>
    webhookEnv(world.prefix, world.upstream, receivers, { ALERT_WEBHOOK_KEY_TTL_MS: String(ttlMs), ALERT_WEBHOOK_TIMEOUT_MS: '250', ALERT_WEBHOOK_RETRY_BASE_MS: '600000' });
  const redisNow = async () => {
    const [s, us] = await redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };
  /** The seven queue keys of `receiver`, named by the app's own RedisKeys. */
  const queueKeys = (app: NestFastifyApplication, receiver: WebhookReceiver) => {
    const r = app.get(AlertsService).configured.find((c) => c.url === receiver.url);
    if (!r) throw new Error(`${receiver.url} is not configured`);
    const keys = app.get(RedisKeys);
    return [
      keys.alertDue(r.id),
      keys.alertBodies(r.id),
      keys.alertAttempts(r.id),
      keys.alertLastQueued(r.id),
      keys.alertQueued(r.id),
      keys.alertLastQueuedSince(r.id),
      keys.alertQueuedIds(r.id),
    ];
  };
  const pttls = (keys: string[]) => Promise.all(keys.map((k) => redis.pttl(k)));
  /** The pending delivery as stored: an expired queue would come back (caught up) with new times and attempts. */
  const stored = ([due, , attempts, , queued]: string[]) =>
    Promise.all([
      // eslint-disable-next-line no-restricted-syntax -- a webhook queue, not a series: a sorted set on every backend
      redis.zrange(due, 0, '-1', 'WITHSCORES'),
      redis.hgetall(attempts),
      // eslint-disable-next-line no-restricted-syntax -- as above
      redis.zrange(queued, 0, '-1', 'WITHSCORES'),
    ]);

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterAll(() => redis.quit());

  it('keys carry ALERT_WEBHOOK_KEY_TTL_MS, refreshed while served; a receiver taken out of the configuration leaves nothing after it', async () => {
    const first = await bootApp(env([kept, removed]));
    world.apps.push(first);
    await flip(first, world.upstream);
    await waitFor('the first attempt to each receiver', () => kept.received.length >= 1 && removed.received.length >= 1);
    const keptKeys = queueKeys(first, kept);
    const removedKeys = queueKeys(first, removed);
    for (const ttl of await pttls([...keptKeys, ...removedKeys])) {
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(ttlMs);
    }
    const delivery = await stored(keptKeys);
    expect(delivery[1]).toEqual({ [(JSON.parse(kept.received[0].body) as { id: string }).id]: '1' });
    // Shortened by hand: the serving loop sets the full TTL again, before they expire.
    await Promise.all(keptKeys.map((k) => redis.pexpire(k, 2000)));
    await waitFor('the TTLs refreshed', async () => (await pttls(keptKeys)).every((t) => t > 2000));
    expect(await stored(keptKeys)).toEqual(delivery);

    // A new configuration without `removed`, started before the old one stops (a rolling deploy):
    // the removed receiver's keys are left alone, to expire.
    const second = await bootApp(env([kept]));
    world.apps.push(second);
    await first.close();
    world.apps.splice(world.apps.indexOf(first), 1);
    const stoppedAt = await redisNow();
    expect((await pttls(removedKeys)).every((t) => t > 0)).toBe(true);
    await waitFor('the keys of the receiver nobody serves gone', async () => (await redis.exists(...removedKeys)) === 0, { timeoutMs: 4 * ttlMs });
    // More than a TTL since the first instance stopped: the kept receiver's keys live on, refreshed by the second.
    await waitFor('one TTL past the stop, by the Redis clock', async () => (await redisNow()) > stoppedAt + ttlMs);
    for (const ttl of await pttls(keptKeys)) {
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(ttlMs);
    }
    expect(await stored(keptKeys)).toEqual(delivery);
    expect(kept.received).toHaveLength(1);
  });
});

describe('a change that reaches ENQUEUE late, after a newer one was queued (e2e)', () => {
  const receiver = new WebhookReceiver();
  const world = webhookWorld('alerts-order', [receiver]);
  const ids = () => receiver.received.map((h) => (JSON.parse(h.body) as { id: string }).id);

  it('is not sent again when it was queued before (a slow instance, a catch-up that read it just before); is sent, once, when it never was', async () => {
    const app = await bootApp(webhookEnv(world.prefix, world.upstream, [receiver]));
    world.apps.push(app);
    await flip(app, world.upstream); // lit → cold: A
    await waitFor('A delivered', async () => receiver.received.length === 1 && (await pendingOf(app, receiver)) === 0);
    world.upstream.mode = { kind: 'json', body: RISING_AGAIN }; // cold → lit: B
    expect((await postRefresh(app)).statusCode).toBe(200);
    await waitFor('B delivered', async () => receiver.received.length === 2 && (await pendingOf(app, receiver)) === 0);
    const [a, b] = ids();

    // A again, as the instance that made it would queue it if it got there only now, or a
    // catch-up that read it as the last change just before B was made.
    await app.get(VerdictEvents).emit(JSON.parse(receiver.received[0].body) as Parameters<VerdictEvents['emit']>[0]);
    // A later change C: anything queued before it is due (and sent) before it.
    world.upstream.mode = { kind: 'json', body: FALLING_AGAIN }; // lit → cold: C
    expect((await postRefresh(app)).statusCode).toBe(200);
    const isC = (h: ReceivedHook) => (JSON.parse(h.body) as { id: string }).id !== a && (JSON.parse(h.body) as { previous: string }).previous === 'lit';
    await waitFor('C delivered', async () => receiver.received.some(isC) && (await pendingOf(app, receiver)) === 0);
    const c = (JSON.parse(receiver.received.find(isC)!.body) as { id: string }).id;
    expect(ids()).toEqual([a, b, c]);

    // A change made just before C whose queueing comes only now (its instance was slow): never
    // queued, so sent, after C, once however often it is seen.
    const late = { ...(JSON.parse(receiver.received.find(isC)!.body) as Parameters<VerdictEvents['emit']>[0]), id: randomUUID() };
    late.since = new Date(Date.parse(late.since) - 60_000).toISOString();
    await app.get(VerdictEvents).emit(late);
    await app.get(VerdictEvents).emit(late);
    await waitFor('the late change delivered', async () => receiver.received.length === 4 && (await pendingOf(app, receiver)) === 0);
    await new Promise((resolve) => setTimeout(resolve, 300)); // a second delivery would come now
    expect(ids()).toEqual([a, b, c, late.id]);
  });
});

/**
 * For a describe block: a subscriber connection (the instance's events, as another process sees
 * them), with the log muted; closed afterwards, and the prefix's keys deleted.
 */
function connections(prefix: string): { subscriber: Redis } {
  const subscriber = new Redis(REDIS_URL, { lazyConnect: true });
  beforeAll(() => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    subscriber.disconnect();
    const redis = new Redis(REDIS_URL);
    await deleteKeys(redis, prefix);
    await redis.quit();
  });
  return { subscriber };
}

describe('a start with empty series announces no change (e2e, real Redis)', () => {
  const prefix = uniquePrefix('verdict-first');
  const { subscriber } = connections(prefix);
  const messages: string[] = [];
  const summaryOf = (verdict: 'unknown' | 'mixed' | 'lit', hour: number) =>
    ({ verdict, as_of: iso(hour), verdict_since: null, price_direction: 'rising', sentiment_direction: null }) as unknown as Parameters<VerdictService['record']>[0];

  it('unknown until every source has reported is not recorded; the first known verdict starts the run; a later unknown is a change', async () => {
    const app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/none', INGEST_ON_STARTUP: 'false' });
    try {
      const verdicts = app.get(VerdictService);
      const emitted: unknown[] = [];
      app.get(VerdictEvents).on((e) => void emitted.push(e));
      await subscriber.subscribe(`${prefix}:events`);
      subscriber.on('message', (_channel: string, message: string) => messages.push(message));

      // Only one source has reported: unknown, nothing recorded.
      expect(await verdicts.record(summaryOf('unknown', 1))).toEqual({ since: null, stale: false });
      expect((await app.inject({ method: 'GET', url: '/verdict' })).json()).toMatchObject({ verdict: null, since: null });
      // Both have: the run starts, no change.
      await verdicts.record(summaryOf('mixed', 2));
      expect((await app.inject({ method: 'GET', url: '/verdict' })).json()).toMatchObject({ verdict: 'mixed', since: iso(2), changes: [] });
      // A source's data gone from the window later is a change like any.
      await verdicts.record(summaryOf('unknown', 3));
      await waitFor('the change published', () => messages.length === 1);
      expect(JSON.parse(messages[0])).toMatchObject({ type: 'verdict.changed', previous: 'mixed', verdict: 'unknown' });
      expect(emitted).toHaveLength(1);
    } finally {
      await app.close();
    }
  });
});

describe('a verdict change is published by the transition itself (e2e, real Redis)', () => {
  const prefix = uniquePrefix('verdict-publish');
  const { subscriber } = connections(prefix);
  const messages: string[] = [];
  const summaryOf = (verdict: 'lit' | 'cold', hour: number) =>
    ({ verdict, as_of: iso(hour), verdict_since: null, price_direction: 'rising', sentiment_direction: 'rising' }) as unknown as Parameters<VerdictService['record']>[0];

  it('reaches every instance once even when the answer is lost and the instance emits nothing: published if and only if made', async () => {
    const app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/unused' });
    const channel = app.get(RedisKeys).events();
    await app.close();
    await subscriber.subscribe(channel);
    subscriber.on('message', (_channel: string, message: string) => messages.push(message));

    // An instance whose process does nothing after the script: every answer from Redis is lost.
    const real = new Redis(REDIS_URL);
    const lossy = new Proxy(real, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver) as unknown;
        if (name !== 'evalsha' && name !== 'eval') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          throw new Error('Command timed out');
        };
      },
    });
    const keys = app.get(RedisKeys);
    const config = app.get(ConfigService);
    const timeseries = { ensureSeries: async () => undefined, add: async () => ({ rejected: 0, errors: [] }) } as unknown as TimeseriesService;
    const events = new VerdictEvents();
    const emitted: unknown[] = [];
    events.on((e) => void emitted.push(e));
    const verdicts = new VerdictService(lossy, keys, timeseries, events, app.get(RawReadGate), config);

    await expect(verdicts.record(summaryOf('lit', 1))).rejects.toThrow('Command timed out'); // the first verdict: no change
    await expect(verdicts.record(summaryOf('lit', 2))).rejects.toThrow('Command timed out'); // the same: no change
    await expect(verdicts.record(summaryOf('cold', 3))).rejects.toThrow('Command timed out'); // lit → cold, answer lost
    await waitFor('the published change', () => messages.length > 0);
    expect(emitted).toEqual([]);
    expect(messages).toHaveLength(1);
    expect(JSON.parse(messages[0])).toMatchObject({ type: 'verdict.changed', previous: 'lit', verdict: 'cold', since: iso(3), summary: { as_of: iso(3), verdict_since: iso(3) } });
    // The JSON lastChange rebuilds for the webhooks, field for field.
    const verdictsOk = new VerdictService(real, keys, timeseries, events, app.get(RawReadGate), config);
    expect(JSON.stringify(await verdictsOk.lastChange(60_000))).toBe(messages[0]);
    real.disconnect();
  });
});
