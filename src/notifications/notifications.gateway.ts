import { OnGatewayConnection, OnGatewayInit, WebSocketGateway } from '@nestjs/websockets';
import type { WebSocket, WebSocketServer } from 'ws';
import { rejectHandshake } from '../common/upgrade.js';
import { NotificationsService } from './notifications.service.js';

/** Close codes (RFC 6455 / IANA registry). */
const GOING_AWAY = 1001;
const TRY_AGAIN_LATER = 1013;
const MAX_UNANSWERED_PINGS = 2;

export const NOTIFICATIONS_WS_PATH = '/ws/notifications';

/**
 * WebSocket at /ws/notifications (on the HTTP server's port, through WsAdapter): every
 * notification as a JSON text frame. Clients are not expected to send anything; frames over
 * 4 KiB close the connection. A protocol ping goes out with each heartbeat; a client that has
 * answered none of the last two is dropped as dead (one is forgiven: an event-loop stall on
 * either side must not cost a live client its connection).
 */
@WebSocketGateway({ path: NOTIFICATIONS_WS_PATH, maxPayload: 4096 })
export class NotificationsGateway implements OnGatewayConnection<WebSocket>, OnGatewayInit<WebSocketServer> {
  constructor(private readonly notifications: NotificationsService) {}

  /** A refused handshake gets the API's JSON 400 (with a listener, `ws` leaves the answer to it). */
  afterInit(server: WebSocketServer): void {
    server.on('wsClientError', rejectHandshake);
  }

  handleConnection(ws: WebSocket): void {
    const slot = this.notifications.connect('ws');
    if (!slot) {
      ws.close(TRY_AGAIN_LATER, 'Too many notification clients; try again later');
      return;
    }
    // WsAdapter logs every socket error at error level, but each is the client's doing (a frame
    // over maxPayload, invalid UTF-8, a reset…) and `ws` closes the socket itself: a warning.
    ws.removeAllListeners('error');
    ws.on('error', (err) => this.notifications.recordDrop('ws', `protocol error: ${err.message}`));
    let unansweredPings = 0;
    ws.on('pong', () => {
      unansweredPings = 0;
    });
    const drop = (reason: string) => {
      this.notifications.recordDrop('ws', reason);
      ws.terminate();
    };
    const subscription = slot.notifications.subscribe({
      next: (n) => {
        if (ws.readyState !== ws.OPEN) return;
        if (this.notifications.isBacklogged(ws.bufferedAmount)) return drop(`${ws.bufferedAmount} bytes unsent`);
        if (n.type === 'heartbeat') {
          if (unansweredPings >= MAX_UNANSWERED_PINGS) return drop(`no pong to the last ${unansweredPings} pings`);
          unansweredPings++;
          ws.ping();
        }
        ws.send(n.data);
      },
      complete: () => ws.close(GOING_AWAY, 'Server shutting down'),
    });
    ws.once('close', () => {
      subscription.unsubscribe();
      slot.release();
    });
  }
}
