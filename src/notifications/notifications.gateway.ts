import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { WebSocket } from 'ws';
import { NotificationsService } from './notifications.service.js';

/** Close codes (RFC 6455 / IANA registry). */
const GOING_AWAY = 1001;
const TRY_AGAIN_LATER = 1013;

/**
 * WebSocket at /ws/notifications (on the HTTP server's port, through WsAdapter): every
 * notification as a JSON text frame. Clients are not expected to send anything; frames over
 * 4 KiB close the connection. A protocol ping goes out with each heartbeat, and a client that
 * has not answered the previous one is dropped as dead.
 */
@WebSocketGateway({ path: '/ws/notifications', maxPayload: 4096 })
export class NotificationsGateway implements OnGatewayConnection<WebSocket> {
  constructor(private readonly notifications: NotificationsService) {}

  handleConnection(ws: WebSocket): void {
    const slot = this.notifications.connect('ws');
    if (!slot) {
      ws.close(TRY_AGAIN_LATER, 'Too many notification clients; try again later');
      return;
    }
    let answeredPing = true;
    ws.on('pong', () => {
      answeredPing = true;
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
          if (!answeredPing) return drop('no pong since the last heartbeat');
          answeredPing = false;
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
