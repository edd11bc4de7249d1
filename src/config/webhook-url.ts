/** Which webhook receiver URLs (ALERT_WEBHOOK_URLS) are allowed: config validates them, alerts sends to them. */

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
