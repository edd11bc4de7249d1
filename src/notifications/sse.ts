import type { Socket } from 'node:net';
import type { Notification } from './notifications.service.js';

/** Reconnect delay suggested to EventSource clients (`retry:` field). */
export const SSE_RETRY_MS = 3000;

/** One Server-Sent Events message: `id`, `event` (the type) and one line of JSON `data`. */
export function formatSse(n: Pick<Notification, 'id' | 'type' | 'data'>): string {
  return `id: ${n.id}\nevent: ${n.type}\ndata: ${n.data}\n\n`;
}

/** The streams waiting for each connection to close: one 'close' listener per connection. */
const waitingOn = new WeakMap<Socket, Set<() => void>>();

/**
 * Calls `done` once `connection` closes; returns what stops waiting. However many streams a
 * client pipelines on one connection, the socket gets a single listener (one each would pass
 * Node's 10-listener leak warning, one stderr line per such connection).
 */
export function onConnectionClose(connection: Socket, done: () => void): () => void {
  let waiting = waitingOn.get(connection);
  if (waiting === undefined) {
    const callbacks = new Set<() => void>();
    waitingOn.set(connection, callbacks);
    connection.once('close', () => callbacks.forEach((callback) => callback()));
    waiting = callbacks;
  }
  const callbacks = waiting;
  callbacks.add(done);
  return () => void callbacks.delete(done);
}
