/**
 * Webhook signatures, as Stripe does them: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
 * of "<t>.<body>" with ALERT_WEBHOOK_SECRET>`. The timestamp is signed with the body, so a
 * receiver that checks it is recent rejects a replayed request. Signed afresh on every attempt
 * (new `t`, same body and Idempotency-Key).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Signature';
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/**
 * The header for `body` at `unixSeconds`: one v1 per secret (ALERT_WEBHOOK_SECRET, then
 * ALERT_WEBHOOK_PREVIOUS_SECRET while it is rotated), so a receiver still on the previous
 * secret verifies it too.
 */
export function signature(secrets: readonly string[], body: string, unixSeconds: number): string {
  const macs = secrets.map((secret) => `,v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`);
  return `t=${unixSeconds}${macs.join('')}`;
}

/**
 * What a receiver does (and the tests): true when `header` carries a v1 signature of `body` with
 * `secret`, made at most `toleranceSeconds` from `nowSeconds`. Compares in constant time.
 */
export function verifySignature(header: string, body: string, secret: string, toleranceSeconds = 300, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const parts = new Map<string, string[]>();
  for (const item of header.split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) continue;
    const k = item.slice(0, eq).trim();
    parts.set(k, [...(parts.get(k) ?? []), item.slice(eq + 1).trim()]);
  }
  const t = parts.get('t')?.[0];
  if (t === undefined || !/^\d{1,12}$/.test(t) || Math.abs(nowSeconds - Number(t)) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'));
  return (parts.get('v1') ?? []).some((v) => {
    const given = Buffer.from(v);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
