import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { signature, verifySignature } from './webhook-signature.js';

/** The receiver's check as docs/notifications.md gives it (its code block under Webhooks), run as written. */
type Verify = (header: unknown, rawBody: string | Buffer, secret: string, toleranceSeconds?: number) => boolean;
const docs = readFileSync(new URL('../../docs/notifications.md', import.meta.url), 'utf8');
const snippet = /```js\n([\s\S]*?)```/.exec(docs.slice(docs.indexOf('## Webhooks')))?.[1] ?? '';
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- the point: the docs' code, run as a reader would paste it
const docsVerify = new Function('createHmac', 'timingSafeEqual', 'Buffer', `${snippet.replace(/^import .*$/m, '')}\nreturn verify;`)(createHmac, timingSafeEqual, Buffer) as Verify;

const SECRET = 'whsec-test-0123456789abcdef';
const body = JSON.stringify({ type: 'verdict.changed', id: 'e1', previous: 'lit', verdict: 'cold' });

describe('webhook signature', () => {
  it('is t=<unix s>,v1=<hex HMAC-SHA256 of "t.body">', () => {
    const header = signature([SECRET], body, 1_700_000_000);
    const mac = createHmac('sha256', SECRET).update(`1700000000.${body}`).digest('hex');
    expect(header).toBe(`t=1700000000,v1=${mac}`);
  });

  it('verifies with the secret, and not with another secret, another body or another timestamp', () => {
    const now = 1_700_000_000;
    const header = signature([SECRET], body, now);
    expect(verifySignature(header, body, SECRET, 300, now)).toBe(true);
    expect(verifySignature(header, body, 'another-secret-0123456789', 300, now)).toBe(false);
    expect(verifySignature(header, `${body} `, SECRET, 300, now)).toBe(false);
    const mac = header.split('v1=')[1];
    expect(verifySignature(`t=${now + 1},v1=${mac}`, body, SECRET, 300, now)).toBe(false);
  });

  it('rejects a replay older than the tolerance, and malformed headers', () => {
    const header = signature([SECRET], body, 1_700_000_000);
    expect(verifySignature(header, body, SECRET, 300, 1_700_000_000 + 301)).toBe(false);
    expect(verifySignature(header, body, SECRET, 300, 1_700_000_000 + 299)).toBe(true);
    for (const bad of ['', 'v1=abc', 't=abc,v1=00', 't=1700000000', 't=1700000000,v1=']) {
      expect(verifySignature(bad, body, SECRET, 300, 1_700_000_000)).toBe(false);
    }
  });

  it('signs with every secret given, so a receiver still on the previous one verifies it while the secret is rotated', () => {
    const previous = 'whsec-previous-0123456789';
    const header = signature([SECRET, previous], body, 1_700_000_000);
    expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    for (const secret of [SECRET, previous]) expect(verifySignature(header, body, secret, 300, 1_700_000_000)).toBe(true);
    expect(verifySignature(header, body, 'another-secret-0123456789', 300, 1_700_000_000)).toBe(false);
  });

  // A receiver is written from the docs: their snippet must verify what is sent, and a request
  // anyone can send (no header, odd bytes, a wrong length) must be a false, never a throw.
  it('the docs\' receiver snippet verifies real signatures (one or two), refuses the rest, and never throws', () => {
    expect(snippet).toContain('function verify(');
    const now = Math.floor(Date.now() / 1000);
    const previous = 'whsec-previous-0123456789';
    for (const header of [signature([SECRET], body, now), signature([SECRET, previous], body, now), signature([previous, SECRET], body, now)]) {
      expect([header, docsVerify(header, body, SECRET), docsVerify(header, Buffer.from(body), SECRET)]).toEqual([header, true, true]);
    }
    const mac = signature([SECRET], body, now).split('v1=')[1];
    const hostile = [
      undefined,
      '',
      'garbage',
      `t=${now}`,
      `t=${now},v1=`,
      `t=${now},v1=${'é'.repeat(64)}`,
      `t=${now},v1=${mac.slice(2)}`,
      `t=${now},v1=${mac}00`,
      `t=${now},v1=${'z'.repeat(64)}`,
      `t=${now - 301},v1=${mac}`,
      `t=${now}.5,v1=${mac}`,
      `t=1e9,v1=${mac}`,
      `v1=${mac},t=abc`,
      signature(['another-secret-0123456789'], body, now),
    ];
    for (const header of hostile) {
      expect([header, docsVerify(header, body, SECRET), verifySignature(String(header), body, SECRET)]).toEqual([header, false, false]);
    }
  });
});
