import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { EventEmitter } from 'node:events';
import { Env } from '../config/env.validation.js';
import { SourceReportDto } from '../ingest/dto/ingest-report.dto.js';
import { SummaryEvents } from '../summary/summary.events.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { RedisClient } from '../redis/redis.types.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { Notification, NotificationsService } from './notifications.service.js';
import { formatSse } from './sse.js';

const settings: Partial<Env> = {
  REDIS_KEY_PREFIX: 'app',
  NOTIFY_HEARTBEAT_MS: 60_000,
  NOTIFY_MAX_CLIENTS: 3,
  NOTIFY_MAX_CLIENTS_PER_IP: 2,
  NOTIFY_MAX_BUFFER_BYTES: 1000,
};
const config = { get: (k: keyof Env) => settings[k] } as unknown as ConfigService<Env, true>;

/** A subscriber stand-in: an EventEmitter that records SUBSCRIBE. */
function fakeSubscriber() {
  const sub = new EventEmitter() as EventEmitter & { subscribe: jest.Mock<() => Promise<number>>; status: string; options: { autoResubscribe?: boolean } };
  sub.subscribe = jest.fn(async () => 1);
  sub.status = 'ready'; // connected: the service subscribes at once
  sub.options = { autoResubscribe: true };
  return sub;
}

const report = { stored: 2, latestSampleTime: '2021-07-07T17:30:48.000Z' } as SourceReportDto;
const refreshed = { cause: { source: 'senticrypt-v1' as const, report }, summary: null };

describe('NotificationsService', () => {
  let publish: jest.Mock<(channel: string, message: string) => Promise<number>>;
  let sub: ReturnType<typeof fakeSubscriber>;
  let service: NotificationsService;
  let summaryEvents: SummaryEvents;

  let metrics: MetricsService;

  beforeEach(async () => {
    metrics = new MetricsService({ on: () => undefined } as unknown as RedisClient, config);
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    publish = jest.fn(async () => 1);
    sub = fakeSubscriber();
    summaryEvents = new SummaryEvents();
    service = new NotificationsService(
      { publish } as unknown as RedisClient,
      sub as unknown as RedisClient,
      summaryEvents,
      new RedisKeys(config),
      config,
      metrics,
    );
    await service.onModuleInit();
  });
  afterEach(() => service.beforeApplicationShutdown());

  it('re-subscribes after every reconnect itself, a failed SUBSCRIBE logged instead of left unhandled', async () => {
    // ioredis's own re-subscribe leaves a rejection unhandled (which ends a Node process).
    expect(sub.options.autoResubscribe).toBe(false);
    expect(sub.subscribe).toHaveBeenCalledTimes(1);
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    sub.subscribe.mockRejectedValueOnce(new Error("Stream isn't writeable and enableOfflineQueue options is false"));
    sub.emit('ready');
    await new Promise((resolve) => setImmediate(resolve));
    expect(warn).toHaveBeenCalledWith("subscribe failed: Stream isn't writeable and enableOfflineQueue options is false");
    sub.emit('ready');
    await new Promise((resolve) => setImmediate(resolve));
    expect(sub.subscribe).toHaveBeenCalledTimes(3);
    expect(sub.subscribe).toHaveBeenLastCalledWith('app:events');
  });

  let nextAddress = 0;
  const collect = () => {
    const slot = service.connect('sse', `192.0.2.${++nextAddress}`);
    if ('refused' in slot) throw new Error(slot.message);
    const got: Notification[] = [];
    slot.notifications.subscribe((n) => got.push(n));
    return { slot, got };
  };

  it('subscribes to <prefix>:events and publishes there each summary refresh caused by a run that stored samples', async () => {
    expect(sub.subscribe).toHaveBeenCalledWith('app:events');
    await summaryEvents.emit(refreshed);
    expect(publish).toHaveBeenCalledWith(
      'app:events',
      JSON.stringify({ type: 'ingest', source: 'senticrypt-v1', latestSampleTime: report.latestSampleTime, stored: 2, report, summary: null }),
    );
    await summaryEvents.emit({ ...refreshed, cause: { ...refreshed.cause, report: { ...report, stored: 0 } } });
    expect(publish).toHaveBeenCalledTimes(1);
  });

  it('never fails the caller when PUBLISH fails', async () => {
    publish.mockRejectedValueOnce(new Error("Stream isn't writeable"));
    await expect(service.publishIngest(refreshed)).resolves.toBeUndefined();
  });

  it('fans a channel message out to every client with increasing ids, as one line of JSON', () => {
    const one = collect();
    const two = collect();
    sub.emit('message', 'app:events', JSON.stringify({ type: 'ingest', latestSampleTime: 't', stored: 2, report: { a: '1\n2' }, summary: null }, null, 2));
    sub.emit('message', 'other', JSON.stringify({ type: 'ingest', latestSampleTime: 't', stored: 1, report: {} }));
    expect(one.got).toHaveLength(1);
    expect(two.got).toEqual(one.got);
    expect(one.got[0].data).not.toContain('\n');
    expect(formatSse(one.got[0])).toBe(
      `id: ${one.got[0].id}\nevent: ingest\ndata: {"type":"ingest","latestSampleTime":"t","stored":2,"report":{"a":"1\\n2"},"summary":null}\n\n`,
    );
  });

  it.each([['not json'], ['null'], ['{"type":"heartbeat","time":"x"}'], ['{"type":"ingest","stored":"2"}']])('ignores a malformed message %s', (msg) => {
    const { got } = collect();
    sub.emit('message', 'app:events', msg);
    expect(got).toEqual([]);
  });

  it('caps clients, per instance and per address, and frees a slot once, however often it is released', () => {
    const slotOf = (transport: 'sse' | 'ws', address: string) => {
      const slot = service.connect(transport, address);
      if ('refused' in slot) throw new Error(slot.message);
      return slot;
    };
    const a = slotOf('sse', '192.0.2.1');
    const b = slotOf('ws', '192.0.2.1');
    expect(service.connect('sse', '192.0.2.1')).toEqual({
      refused: 'address',
      message: 'Too many notification clients from this address (NOTIFY_MAX_CLIENTS_PER_IP: 2); try again later',
    });
    const c = slotOf('sse', '192.0.2.2');
    expect(service.connect('ws', '192.0.2.3')).toEqual({ refused: 'full', message: 'Too many notification clients on this instance; try again later' });
    expect(service.stats).toEqual({ sse: 2, ws: 1, dropped: 0 });
    a.release();
    a.release();
    expect(service.clientCount).toBe(2);
    // The address has room again, once.
    const d = slotOf('sse', '192.0.2.1');
    expect(service.connect('sse', '192.0.2.4')).toMatchObject({ refused: 'full' });
    for (const slot of [b, c, d]) slot.release();
    expect(service.clientCount).toBe(0);
    slotOf('ws', '192.0.2.1');
    slotOf('ws', '192.0.2.1');
  });

  it('exposes connected, refused and dropped clients in /metrics', async () => {
    const sse = service.connect('sse', '192.0.2.1');
    service.connect('ws', '192.0.2.1');
    service.connect('ws', '192.0.2.1'); // over NOTIFY_MAX_CLIENTS_PER_IP
    service.connect('sse', '192.0.2.2');
    service.connect('sse', '192.0.2.3'); // over NOTIFY_MAX_CLIENTS
    service.recordDrop('ws', 'no pong');
    if (!('refused' in sse)) sse.release();
    const text = await metrics.render();
    expect(text).toContain('notification_clients{transport="sse"} 1\n');
    expect(text).toContain('notification_clients{transport="ws"} 1\n');
    expect(text).toContain('notification_clients_refused_total{transport="ws",reason="address"} 1\n');
    expect(text).toContain('notification_clients_refused_total{transport="sse",reason="full"} 1\n');
    expect(text).toContain('notification_clients_dropped_total{transport="ws"} 1\n');
  });

  it('serializes each notification once: every client gets the same Buffers', () => {
    const one = collect();
    const two = collect();
    sub.emit('message', 'app:events', JSON.stringify({ type: 'ingest', latestSampleTime: 't', stored: 2, report: {}, summary: null }));
    expect(one.got[0].sse).toBe(two.got[0].sse);
    expect(one.got[0].text).toBe(two.got[0].text);
    expect(one.got[0].sse.toString()).toBe(formatSse(one.got[0]));
    expect(one.got[0].text.toString()).toBe(one.got[0].data);
  });

  it('reports the subscription going down and up once each (up once SUBSCRIBE is confirmed), and tells late clients it is down', async () => {
    const { got } = collect();
    sub.emit('close');
    sub.emit('close'); // every failed reconnect attempt closes again
    const late = collect();
    let confirm = (_n: number) => undefined as void;
    sub.subscribe.mockImplementationOnce(() => new Promise<number>((resolve) => (confirm = resolve)));
    sub.emit('ready');
    await new Promise((resolve) => setImmediate(resolve));
    const types = (ns: Notification[]) => ns.map((n) => JSON.parse(n.data));
    // Reconnected, but not subscribed yet: events published now would be missed.
    expect(types(got)).toEqual([{ type: 'status', redis: 'down' }]);
    confirm(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(types(got)).toEqual([
      { type: 'status', redis: 'down' },
      { type: 'status', redis: 'up' },
    ]);
    expect(types(late.got)).toEqual([
      { type: 'status', redis: 'down' },
      { type: 'status', redis: 'up' },
    ]);
  });

  it('treats more than NOTIFY_MAX_BUFFER_BYTES unsent as backlogged', () => {
    expect(service.isBacklogged(1000)).toBe(false);
    expect(service.isBacklogged(1001)).toBe(true);
  });

  it('ends every stream on shutdown and refuses new clients', () => {
    const { slot } = collect();
    let completed = false;
    slot.notifications.subscribe({ complete: () => (completed = true) });
    service.beforeApplicationShutdown();
    expect(completed).toBe(true);
    expect(service.connect('ws', '192.0.2.99')).toMatchObject({ refused: 'full' });
  });

  // Counted as `full`, a rolling deploy's reconnects fired the alert whose advice is to raise NOTIFY_MAX_CLIENTS.
  it('counts a refusal while shutting down as reason closing, not full', async () => {
    service.beforeApplicationShutdown();
    service.connect('sse', '192.0.2.98');
    const text = await metrics.render();
    expect(text).toContain('notification_clients_refused_total{transport="sse",reason="closing"} 1');
    expect(text).toContain('notification_clients_refused_total{transport="sse",reason="full"} 0');
  });
});
