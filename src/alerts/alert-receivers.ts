/** Webhook receivers (ALERT_WEBHOOK_URLS): which URLs are allowed, and how each is named. */
import { createHash } from 'node:crypto';


export interface Receiver {
  /** First 12 hex digits of the URL's SHA-256: its Redis keys and its `receiver` metric label. */
  id: string;
  url: string;
  /** What logs say: the origin only (never the path or query, which may carry a token, nor credentials). */
  label: string;
}

export function toReceiver(url: string): Receiver {
  return { id: createHash('sha256').update(url).digest('hex').slice(0, 12), url, label: new URL(url).origin };
}
