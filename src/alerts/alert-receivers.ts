/** Webhook receivers (ALERT_WEBHOOK_URLS): which URLs are allowed, and how each is named. */
import { createHash } from 'node:crypto';

export interface Receiver {
  /** First 12 hex digits of the URL's SHA-256: its Redis keys and its `receiver` metric label. */
  id: string;
  url: string;
  /** What logs say: the origin only (never the path or query, which may carry a token, nor credentials). */
  label: string;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/**
 * Why `text` is not an acceptable receiver URL, or null when it is: `https://` anywhere, or
 * `http://` to a loopback host only (a local relay or a test; anything else would send signed
 * alerts in clear).
 */
export function receiverUrlProblem(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:') return LOOPBACK.test(url.hostname) ? null : 'http:// is only allowed to a loopback host (localhost, 127.0.0.0/8, [::1]); use https://';
  return 'must be an https:// URL (or http:// to a loopback host)';
}

export function toReceiver(url: string): Receiver {
  return { id: createHash('sha256').update(url).digest('hex').slice(0, 12), url, label: new URL(url).origin };
}
