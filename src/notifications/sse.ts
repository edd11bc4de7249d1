import type { Notification } from './notifications.service.js';

/** Reconnect delay suggested to EventSource clients (`retry:` field). */
export const SSE_RETRY_MS = 3000;

/** One Server-Sent Events message: `id`, `event` (the type) and one line of JSON `data`. */
export function formatSse(n: Pick<Notification, 'id' | 'type' | 'data'>): string {
  return `id: ${n.id}\nevent: ${n.type}\ndata: ${n.data}\n\n`;
}
