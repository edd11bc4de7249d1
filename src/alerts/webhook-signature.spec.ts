import { createHmac } from 'node:crypto';
import { signature, verifySignature } from './webhook-signature.js';

const SECRET = 'whsec-test-0123456789abcdef';
const body = JSON.stringify({ type: 'verdict.changed', id: 'e1', previous: 'lit', verdict: 'cold' });

describe('webhook signature', () => {
  it('is t=<unix s>,v1=<hex HMAC-SHA256 of "t.body">', () => {
    const header = signature(SECRET, body, 1_700_000_000);
    const mac = createHmac('sha256', SECRET).update(`1700000000.${body}`).digest('hex');
    expect(header).toBe(`t=1700000000,v1=${mac}`);
  });

  it('verifies with the secret, and not with another secret, another body or another timestamp', () => {
    const now = 1_700_000_000;
    const header = signature(SECRET, body, now);
    expect(verifySignature(header, body, SECRET, 300, now)).toBe(true);
    expect(verifySignature(header, body, 'another-secret-0123456789', 300, now)).toBe(false);
    expect(verifySignature(header, `${body} `, SECRET, 300, now)).toBe(false);
    const mac = header.split('v1=')[1];
    expect(verifySignature(`t=${now + 1},v1=${mac}`, body, SECRET, 300, now)).toBe(false);
  });

  it('rejects a replay older than the tolerance, and malformed headers', () => {
    const header = signature(SECRET, body, 1_700_000_000);
    expect(verifySignature(header, body, SECRET, 300, 1_700_000_000 + 301)).toBe(false);
    expect(verifySignature(header, body, SECRET, 300, 1_700_000_000 + 299)).toBe(true);
    for (const bad of ['', 'v1=abc', 't=abc,v1=00', 't=1700000000', 't=1700000000,v1=']) {
      expect(verifySignature(bad, body, SECRET, 300, 1_700_000_000)).toBe(false);
    }
  });
});
