import { BeforeApplicationShutdown, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnGatewayConnection, OnGatewayInit, WebSocketGateway } from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { clientAddress, clientKey } from '../common/client-address.js';
import { corsOrigins } from '../config/cors-origins.js';
import { trustFunction } from '../config/trust-proxy.js';
import { refuseHandshake, rejectHandshake } from '../common/upgrade.js';
import { Env } from '../config/env.validation.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ThrottleService } from '../throttle/throttle.service.js';
import { ClientSlot, NotificationsService, SLOT_RETRY_AFTER_SECONDS } from './notifications.service.js';

/** Close codes (RFC 6455 / IANA registry). */
const GOING_AWAY = 1001;
const POLICY_VIOLATION = 1008;
const MAX_UNANSWERED_PINGS = 2;
/** Pings a client may send per PING_WINDOW_MS (a keepalive sends one every 10-30 s). */
const MAX_CLIENT_PINGS = 10;
const PING_WINDOW_MS = 10_000;
/**
 * How long after we close a client its socket is destroyed: time for our close frame to go out.
 * Its answer is not read (see closeFirmly), so this is the wait either way; `ws` would wait up
 * to 30 s for it (refused clients that never answer held a socket each that long).
 */
const CLOSE_GRACE_MS = 1000;
/** A refused Origin is not echoed back: it is the client's text. */
const CROSS_SITE_MESSAGE = 'This origin may not open the WebSocket: only the same host and CORS_ORIGINS may';

/**
 * Closes with `code` and reads nothing more (a client that keeps sending frames would otherwise
 * have each parsed until it answers the close); the socket is destroyed after CLOSE_GRACE_MS.
 */
function closeFirmly(ws: WebSocket, code: number, reason: string): void {
  ws.close(code, reason);
  ws.pause();
  setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
}

export const NOTIFICATIONS_WS_PATH = '/ws/notifications';

/**
 * Whether a handshake may open the WebSocket, by its Origin. Browsers send Origin with every
 * handshake and apply no CORS to WebSockets, so without this check any site a user visits could
 * read the notifications of a service that user's browser reaches (an internal one, say), as
 * CORS keeps it from reading /events. Allowed: clients that send no Origin (not browsers), pages
 * of the host the handshake is addressed to (hostOf), and CORS_ORIGINS (`*`: any), as for the
 * REST API.
 */
export function originAllowed(req: IncomingMessage, origins: readonly string[], trust: (addr: string, hop: number) => boolean): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || origins.includes('*') || origins.includes(origin)) return true;
  try {
    const page = new URL(origin);
    // Parsed with the page's scheme, so a default port written out ("host:443") still matches.
    return page.host === new URL(`${page.protocol}//${hostOf(req, trust)}`).host;
  } catch {
    return false; // "null" (a sandboxed or file: page) or no valid host
  }
}

/**
 * The host a handshake was addressed to, as Fastify's `request.host` reads it: behind a trusted
 * proxy (TRUST_PROXY) the last X-Forwarded-Host, since a proxy may send its own name in Host.
 */
function hostOf(req: IncomingMessage, trust: (addr: string, hop: number) => boolean): string {
  const forwarded = req.headers['x-forwarded-host'];
  const peer = req.socket?.remoteAddress;
  if (typeof forwarded === 'string' && forwarded !== '' && peer !== undefined && trust(peer, 0)) return forwarded.slice(forwarded.lastIndexOf(',') + 1).trim();
  return req.headers.host ?? '';
}

/**
 * WebSocket at /ws/notifications (on the HTTP server's port, through WsAdapter): every
 * notification as a JSON text frame. Clients send nothing: a message closes the connection
 * (1008), as does a frame over 4 KiB (1009); otherwise a client could make the process parse
 * frames as fast as it sends them (a few clients sending 4 KiB frames took the liveness check
 * from 1 ms to a second). A protocol ping goes out with each heartbeat; a client that has
 * answered none of the last two is dropped as dead (one is forgiven: an event-loop stall on
 * either side must not cost a live client its connection). Pages of other sites are let in
 * only as originAllowed says.
 */
// handleProtocols: no subprotocol is spoken, so none is chosen; ws's default picked the
// client's first offer, claiming a protocol it does not speak (RFC 6455 §4.2.2).
@WebSocketGateway({ path: NOTIFICATIONS_WS_PATH, maxPayload: 4096, handleProtocols: () => false })
export class NotificationsGateway implements OnGatewayConnection<WebSocket>, OnGatewayInit<WebSocketServer>, BeforeApplicationShutdown {
  private readonly logger = new Logger(NotificationsGateway.name);
  private readonly trust: (addr: string, hop: number) => boolean;
  /** Handshakes whose rate-limit count is in flight, with when each began (performance.now()). */
  private readonly verifying = new Map<IncomingMessage, number>();
  /** Each handshake let through: when it began, and the notification slot taken for it, until its 101 is out (handleConnection). */
  private readonly upgrading = new WeakMap<IncomingMessage, { started: number; slot: ClientSlot }>();
  private closing = false;
  /** Whether handshake answers are timed (not with METRICS_ENABLED=false, as requests are not). */
  private readonly timed: boolean;
  /** CORS_ORIGINS: the other sites whose pages may open the WebSocket (originAllowed). */
  private readonly origins: readonly string[];

  constructor(
    private readonly notifications: NotificationsService,
    private readonly throttle: ThrottleService,
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.trust = trustFunction(config.get('TRUST_PROXY', { infer: true }));
    this.timed = config.get('METRICS_ENABLED', { infer: true });
    this.origins = corsOrigins(config.get('CORS_ORIGINS', { infer: true }));
  }

  afterInit(server: WebSocketServer): void {
    // A malformed handshake gets the API's JSON 400 (with a listener, `ws` leaves the answer to it).
    server.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
      const started = performance.now();
      if (rejectHandshake(err, socket, req)) this.answered(400, started);
    });
    // Set here, not in @WebSocketGateway's options: the check needs this instance's services.
    server.options.verifyClient = (info: { req: IncomingMessage }, done: (verified: boolean) => void) =>
      void this.verify(info.req, done);
  }

  /**
   * Every handshake counts against the rate limit, as any GET does (ThrottleGuard never sees
   * one: Node hands it from its 'upgrade' event straight to `ws`), then takes its notification
   * slot, both before its 101. Over the limit the client gets the API's 429 with Retry-After, as
   * for any request; refused a slot, the 503 or 429 `/events` answers. Either way it costs no
   * WebSocket. While Redis is away the count fails open; any other failure is a 500, as for a request.
   * A page of another site not in CORS_ORIGINS gets a 403 before any of that (originAllowed).
   */
  private async verify(req: IncomingMessage, done: (verified: boolean) => void): Promise<void> {
    const started = performance.now();
    if (this.closing) return this.refuseClosing(req, started);
    if (!originAllowed(req, this.origins, this.trust)) {
      if (refuseHandshake(req.socket, req, 403, CROSS_SITE_MESSAGE)) this.answered(403, started);
      return;
    }
    const address = clientAddress(req, this.trust);
    // No address: reset by the client already (no 101 will go out); handleConnection lets it go.
    if (address === undefined) return done(true);
    this.verifying.set(req, started);
    let retryIn: number | undefined;
    try {
      retryIn = await this.throttle.hit(`GET:${NOTIFICATIONS_WS_PATH}`, address);
    } catch (err) {
      if (!this.verifying.delete(req)) return;
      this.logger.error(`WebSocket handshake: rate-limit count failed: ${(err as Error).stack ?? String(err)}`);
      if (refuseHandshake(req.socket, req, 500, 'Internal server error')) this.answered(500, started);
      return;
    }
    // Answered by beforeApplicationShutdown meanwhile.
    if (!this.verifying.delete(req)) return;
    // Answered here, as below: `done(false, 429)` would have `ws` answer text/html. `ws` has
    // nothing left to do with the socket (it only destroys it on an error).
    if (retryIn !== undefined) {
      if (refuseHandshake(req.socket, req, 429, `Too many requests; retry in ${retryIn} s`, { 'retry-after': retryIn })) this.answered(429, started);
      return;
    }
    // Gone while it was counted: no slot, whose release would wait for a 'close' already emitted.
    if (req.socket.destroyed) return;
    const slot = this.notifications.connect('ws', clientKey(address));
    if ('refused' in slot) {
      const status = slot.refused === 'full' ? 503 : 429;
      if (refuseHandshake(req.socket, req, status, slot.message, { 'retry-after': SLOT_RETRY_AFTER_SECONDS })) this.answered(status, started);
      return;
    }
    // The socket's end frees the slot: `ws` drops a handshake whose client left before its 101
    // without a word (no handleConnection), and an admitted client's WebSocket closes with it.
    req.socket.once('close', () => slot.release());
    // Timed once the 101 is out (handleConnection): `ws` writes none to a client already gone.
    this.upgrading.set(req, { started, slot });
    done(true);
  }

  /**
   * Times a handshake's answer as Fastify's hook times a request's (method GET, the gateway's
   * path as route): Node hands handshakes to `ws`, not Fastify, so they were in no metric.
   */
  private answered(status: number, started: number): void {
    if (!this.timed) return;
    this.metrics.httpDuration.tally({ method: 'GET', route: NOTIFICATIONS_WS_PATH, status: String(status) }).observe((performance.now() - started) / 1000);
  }

  /**
   * Handshakes still being counted get a 503 now, as requests arriving during shutdown do: the
   * shutdown's sweep would close them unanswered (no response is in progress on them), or `ws`,
   * closed by then, would answer text/html.
   */
  beforeApplicationShutdown(): void {
    this.closing = true;
    for (const [req, started] of this.verifying) this.refuseClosing(req, started);
    this.verifying.clear();
  }

  private refuseClosing(req: IncomingMessage, started: number): void {
    if (refuseHandshake(req.socket, req, 503, 'Server shutting down; try again', { 'retry-after': 1 })) this.answered(503, started);
  }

  handleConnection(ws: WebSocket, req: IncomingMessage): void {
    // `ws` has written the 101.
    const upgrade = this.upgrading.get(req);
    this.upgrading.delete(req);
    // WsAdapter logs every socket error at error level, but each is the client's doing (a frame
    // over maxPayload, unmasked or invalid UTF-8, a reset…) and `ws` closes the socket itself:
    // each counts as a drop (a warning).
    ws.removeAllListeners('error');
    if (upgrade === undefined) {
      // Reset by the client before its handshake was verified (Node reads no address then): gone.
      ws.terminate();
      return;
    }
    this.answered(101, upgrade.started);
    ws.on('error', (err) => this.notifications.recordDrop('ws', `protocol error: ${err.message}`));
    this.admit(ws, upgrade.slot);
  }

  /** Subscribes `ws` to the notifications of the slot taken for it. */
  private admit(ws: WebSocket, slot: ClientSlot): void {
    ws.once('message', () => {
      this.notifications.recordDrop('ws', 'it sent a message');
      closeFirmly(ws, POLICY_VIOLATION, 'This endpoint takes no messages');
    });
    let unansweredPings = 0;
    ws.on('pong', () => {
      unansweredPings = 0;
    });
    const drop = (reason: string) => {
      this.notifications.recordDrop('ws', reason);
      ws.terminate();
    };
    // `ws` answers a client's ping with a pong by itself, and a client that pings without
    // reading piled them up in memory (hundreds of MB in seconds) between two of our sends, the
    // only place the backlog was checked: checked at each ping too, and a client pinging more
    // than a keepalive needs (MAX_CLIENT_PINGS per PING_WINDOW_MS) is closed like one sending messages.
    let pings = 0;
    let windowStart = Date.now();
    ws.on('ping', () => {
      // `ws` still parses what it had read when it was closed: one warning per ping after that
      // (thousands from one 64 KiB write) is a flood of its own.
      if (ws.readyState !== ws.OPEN) return;
      if (this.notifications.isBacklogged(ws.bufferedAmount)) return drop(`${ws.bufferedAmount} bytes unsent`);
      const now = Date.now();
      if (now - windowStart >= PING_WINDOW_MS) {
        windowStart = now;
        pings = 0;
      }
      if (++pings > MAX_CLIENT_PINGS) {
        this.notifications.recordDrop('ws', 'it pinged too often');
        closeFirmly(ws, POLICY_VIOLATION, 'Too many pings');
      }
    });
    const subscription = slot.notifications.subscribe({
      next: (n) => {
        if (ws.readyState !== ws.OPEN) return;
        if (this.notifications.isBacklogged(ws.bufferedAmount)) return drop(`${ws.bufferedAmount} bytes unsent`);
        if (n.type === 'heartbeat') {
          if (unansweredPings >= MAX_UNANSWERED_PINGS) return drop(`no pong to the last ${unansweredPings} pings`);
          unansweredPings++;
          ws.ping();
        }
        ws.send(n.text, { binary: false });
      },
      complete: () => ws.close(GOING_AWAY, 'Server shutting down'),
    });
    ws.once('close', () => subscription.unsubscribe());
  }
}
