import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Counter, Gauge } from 'prom-client';
import { concat, Observable, of, Subject } from 'rxjs';
import { Env } from '../config/env.validation.js';
import { countFromZero, MetricsService } from '../metrics/metrics.service.js';
import { REDIS_CLIENT, REDIS_SUBSCRIBER } from '../redis/redis.constants.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { isCluster, RedisClient } from '../redis/redis.types.js';
import { SummaryEvents, SummaryRefreshedEvent } from '../summary/summary.events.js';
import type { VerdictChangedEventDto } from '../verdict/dto/verdict.dto.js';
import { isVerdict } from '../verdict/verdict.rule.js';
import { IngestEventDto, NotificationEvent } from './dto/notification-event.dto.js';
import { formatSse } from './sse.js';

/**
 * One event as it goes out to every client of this instance, serialized once: every client's
 * socket is handed the same Buffers, so what a slow client has not taken yet is shared, not a
 * copy per client (a copy per client let a few hundred clients that never read fill the heap).
 */
export interface Notification {
  /** Sequence number on this instance (the SSE `id:`). */
  id: number;
  type: NotificationEvent['type'];
  /** The event as one line of JSON: SSE `data:` and WebSocket text frame. */
  data: string;
  /** The whole SSE message (formatSse). */
  sse: Buffer;
  /** `data` as UTF-8, the WebSocket text frame's payload. */
  text: Buffer;
}

/** A connected client's place in the fan-out. */
export interface ClientSlot {
  /** What the client should be sent; completes when the service shuts down. */
  readonly notifications: Observable<Notification>;
  /** Frees the slot (idempotent); call when the client is gone. */
  release(): void;
}

export type Transport = 'sse' | 'ws';

/** Seconds a client refused a slot is told to wait (Retry-After), on either transport. */
export const SLOT_RETRY_AFTER_SECONDS = 5;

/** Why a client was not given a slot: the instance is full, or its address has its share. */
export interface Refusal {
  refused: 'full' | 'address';
  message: string;
}

/**
 * Live notifications. Ingest events are PUBLISHed on `<prefix>:events`; every instance
 * SUBSCRIBEs with its own subscriber connection and fans each message out in process (one
 * rxjs Subject) to its SSE and WebSocket clients, together with local heartbeats and Redis
 * status changes. Transports only write; how slow a client may get is decided with
 * `isBacklogged`, how many may connect with `connect`.
 */
@Injectable()
export class NotificationsService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(NotificationsService.name);
  private readonly channel: string;
  private readonly heartbeatMs: number;
  private readonly maxClients: number;
  private readonly maxPerAddress: number;
  private readonly maxBufferBytes: number;
  private readonly hub = new Subject<Notification>();
  private readonly counts: Record<Transport, number> = { sse: 0, ws: 0 };
  /** Connected clients per client address (only addresses with at least one). */
  private readonly perAddress = new Map<string, number>();
  private seq = 0;
  private droppedClients = 0;
  private subscribed = true;
  private stopped = false;
  private heartbeat?: NodeJS.Timeout;
  private readonly refusals: Counter<'transport' | 'reason'>;
  private readonly drops: Counter<'transport'>;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    @Inject(REDIS_SUBSCRIBER) private readonly subscriber: RedisClient,
    private readonly summaryEvents: SummaryEvents,
    keys: RedisKeys,
    config: ConfigService<Env, true>,
    metrics: MetricsService,
  ) {
    this.channel = keys.events();
    this.heartbeatMs = config.get('NOTIFY_HEARTBEAT_MS', { infer: true });
    this.maxClients = config.get('NOTIFY_MAX_CLIENTS', { infer: true });
    this.maxPerAddress = config.get('NOTIFY_MAX_CLIENTS_PER_IP', { infer: true });
    this.maxBufferBytes = config.get('NOTIFY_MAX_BUFFER_BYTES', { infer: true });
    // What an operator sizes NOTIFY_MAX_CLIENTS(_PER_IP) and NOTIFY_MAX_BUFFER_BYTES by.
    const counts = this.counts;
    new Gauge({
      name: 'notification_clients',
      help: 'Notification clients connected to this instance, by transport (sse, ws)',
      labelNames: ['transport'] as const,
      registers: [metrics.registry],
      collect() {
        this.set({ transport: 'sse' }, counts.sse);
        this.set({ transport: 'ws' }, counts.ws);
      },
    });
    this.refusals = new Counter({
      name: 'notification_clients_refused_total',
      help: 'Notification clients refused a slot, by transport and reason: full (NOTIFY_MAX_CLIENTS reached), address (NOTIFY_MAX_CLIENTS_PER_IP reached), closing (shutting down)',
      labelNames: ['transport', 'reason'] as const,
      registers: [metrics.registry],
    });
    this.drops = new Counter({
      name: 'notification_clients_dropped_total',
      help: 'Notification clients dropped by the server, by transport: too slow (NOTIFY_MAX_BUFFER_BYTES), dead (no pong), or misbehaving',
      labelNames: ['transport'] as const,
      registers: [metrics.registry],
    });
    const transports: Transport[] = ['sse', 'ws'];
    countFromZero(this.refusals, transports.flatMap((transport) => ['full', 'address', 'closing'].map((reason) => ({ transport, reason }))));
    countFromZero(this.drops, transports.map((transport) => ({ transport })));
  }

  async onModuleInit(): Promise<void> {
    // After each ingest run, once the summary is recomputed: runs that changed the data are news.
    // (verdict.changed is published on the same channel by the verdict's transition script.)
    this.summaryEvents.on((event) => this.publishIngest(event));
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.relay(message);
    });
    // 'close' fires on every lost connection (and every failed reconnect attempt), 'ready'
    // once reconnected.
    this.subscriber.on('close', () => this.setSubscribed(false));
    const subscribe = () =>
      this.subscriber.subscribe(this.channel).then(
        () => true,
        (err: Error) => {
          this.logger.warn(`subscribe failed: ${err.message}`);
          return false;
        },
      );
    if (!isCluster(this.subscriber)) {
      // One server: we re-subscribe after every reconnect ourselves. ioredis's own re-subscribe
      // (autoResubscribe) leaves its promise unhandled, so a connection that closes again right
      // after 'ready' (a flapping Redis; seen in the stall e2e) rejected it unhandled, which
      // ends a Node process. A Cluster re-subscribes through its own subscriber connection.
      // 'up' once SUBSCRIBE is confirmed: an event published before that is missed, and
      // clients told 'up' earlier would not know to refetch.
      this.subscriber.options.autoResubscribe = false;
      this.subscriber.on('ready', () => void subscribe().then((ok) => ok && this.setSubscribed(true)));
    } else {
      this.subscriber.on('ready', () => this.setSubscribed(true));
    }
    if (this.subscriber.status === 'ready') {
      await this.subscriber.subscribe(this.channel);
    } else {
      // Started without Redis (REDIS_STARTUP_MODE=degraded): subscribe once it connects.
      this.setSubscribed(false);
      if (isCluster(this.subscriber)) this.subscriber.once('ready', () => void subscribe());
    }
    this.heartbeat = setInterval(() => this.emit({ type: 'heartbeat', time: new Date().toISOString() }), this.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Ends every stream, so the HTTP server can close (an open SSE response is never idle). */
  beforeApplicationShutdown(): void {
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.hub.complete();
  }

  /**
   * Tells the clients of every instance about an ingest run that stored samples. Never throws:
   * a lost notification must not fail the ingest that caused it.
   */
  async publishIngest({ cause, summary }: SummaryRefreshedEvent): Promise<void> {
    const { source, report } = cause;
    if (report.stored === 0 || report.latestSampleTime === null) return;
    const event: IngestEventDto = { type: 'ingest', source, latestSampleTime: report.latestSampleTime, stored: report.stored, report, summary };
    await this.publish(event);
  }

  /** PUBLISHes an event to the clients of every instance. Never throws (a lost notification must not fail its cause). */
  async publish(event: IngestEventDto): Promise<void> {
    try {
      await this.redis.publish(this.channel, JSON.stringify(event));
    } catch (err) {
      this.logger.warn(`could not publish the ${event.type} event: ${(err as Error).message}`);
    }
  }

  /**
   * A slot in the fan-out for a client at `address` (its IP, as the rate limit sees it), or why
   * not: NOTIFY_MAX_CLIENTS clients are connected, or NOTIFY_MAX_CLIENTS_PER_IP from this address
   * (so one address cannot take every slot and lock everyone else out).
   */
  connect(transport: Transport, address: string): ClientSlot | Refusal {
    if (this.stopped || this.clientCount >= this.maxClients) {
      // Not 'full' when shutting down: that reason's alert says to raise NOTIFY_MAX_CLIENTS.
      this.refusals.inc({ transport, reason: this.stopped ? 'closing' : 'full' });
      return { refused: 'full', message: 'Too many notification clients on this instance; try again later' };
    }
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (fromAddress >= this.maxPerAddress) {
      this.refusals.inc({ transport, reason: 'address' });
      return { refused: 'address', message: `Too many notification clients from this address (NOTIFY_MAX_CLIENTS_PER_IP: ${this.maxPerAddress}); try again later` };
    }
    this.counts[transport]++;
    this.perAddress.set(address, fromAddress + 1);
    let released = false;
    // A client arriving during an outage learns at once that events may be missed.
    const initial = this.subscribed ? [] : [this.envelope({ type: 'status', redis: 'down' })];
    return {
      notifications: concat(of(...initial), this.hub),
      release: () => {
        if (released) return;
        released = true;
        this.counts[transport]--;
        const left = (this.perAddress.get(address) ?? 1) - 1;
        if (left > 0) this.perAddress.set(address, left);
        else this.perAddress.delete(address);
      },
    };
  }

  /** True when a client's unsent output is over NOTIFY_MAX_BUFFER_BYTES: it must be dropped. */
  isBacklogged(bufferedBytes: number): boolean {
    return bufferedBytes > this.maxBufferBytes;
  }

  /** Logs and counts a client dropped for being too slow or dead. */
  recordDrop(transport: Transport, reason: string): void {
    this.droppedClients++;
    this.drops.inc({ transport });
    this.logger.warn(`dropped a ${transport} notification client: ${reason}`);
  }

  /** Clients connected to this instance now (both transports). */
  get clientCount(): number {
    return this.counts.sse + this.counts.ws;
  }

  get stats(): { sse: number; ws: number; dropped: number } {
    return { ...this.counts, dropped: this.droppedClients };
  }

  private relay(message: string): void {
    let event: unknown;
    try {
      event = JSON.parse(message);
    } catch {
      event = undefined;
    }
    if (!isIngestEvent(event) && !isVerdictChangedEvent(event)) {
      this.logger.warn(`ignored a malformed message on ${this.channel}`);
      return;
    }
    this.emit(event);
  }

  private setSubscribed(up: boolean): void {
    if (this.stopped || up === this.subscribed) return;
    this.subscribed = up;
    if (up) this.logger.log('Redis subscription restored; notifications resume');
    else this.logger.warn('Redis subscription lost; ingest notifications are missed until it is back');
    this.emit({ type: 'status', redis: up ? 'up' : 'down' });
  }

  private emit(event: NotificationEvent): void {
    if (!this.stopped) this.hub.next(this.envelope(event));
  }

  private envelope(event: NotificationEvent): Notification {
    // Re-serialized, so data is always one line whatever the publisher sent.
    const message = { id: ++this.seq, type: event.type, data: JSON.stringify(event) };
    return { ...message, sse: Buffer.from(formatSse(message)), text: Buffer.from(message.data) };
  }
}

function isIngestEvent(value: unknown): value is IngestEventDto {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.type === 'ingest' && typeof v.latestSampleTime === 'string' && typeof v.stored === 'number' && typeof v.report === 'object';
}

function isVerdictChangedEvent(value: unknown): value is VerdictChangedEventDto {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.type === 'verdict.changed' && typeof v.id === 'string' && isVerdict(v.previous) && isVerdict(v.verdict) && typeof v.since === 'string';
}
