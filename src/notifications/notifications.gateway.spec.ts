import type { IncomingMessage } from 'node:http';
import { originAllowed } from './notifications.gateway.js';

const handshake = (host: string | undefined, origin?: string, forwardedHost?: string) =>
  ({ headers: { host, origin, 'x-forwarded-host': forwardedHost }, socket: { remoteAddress: '10.0.0.2' } }) as unknown as IncomingMessage;
const noProxy = () => false;
const proxy = (addr: string) => addr === '10.0.0.2';

describe('originAllowed (which pages may open the WebSocket)', () => {
  it('lets in clients without Origin (not browsers), whatever CORS_ORIGINS says', () => {
    expect(originAllowed(handshake('lit.example'), [], noProxy)).toBe(true);
    expect(originAllowed(handshake(undefined), ['https://dash.example'], noProxy)).toBe(true);
  });

  it('lets in pages of the host the handshake is addressed to, default ports written out or not', () => {
    expect(originAllowed(handshake('lit.example', 'https://lit.example'), [], noProxy)).toBe(true);
    expect(originAllowed(handshake('lit.example:443', 'https://lit.example'), [], noProxy)).toBe(true);
    expect(originAllowed(handshake('LIT.example:8080', 'http://lit.example:8080'), [], noProxy)).toBe(true);
    expect(originAllowed(handshake('lit.example', 'http://lit.example:8080'), [], noProxy)).toBe(false);
    expect(originAllowed(handshake('lit.example:80', 'https://lit.example'), [], noProxy)).toBe(false);
    expect(originAllowed(handshake('[::1]:3000', 'http://[::1]:3000'), [], noProxy)).toBe(true);
  });

  it('lets in the pages of CORS_ORIGINS, each as the browser sends it, or any page with *', () => {
    const origins = ['https://dash.example', 'http://localhost:5173'];
    expect(originAllowed(handshake('lit.example', 'https://dash.example'), origins, noProxy)).toBe(true);
    expect(originAllowed(handshake('lit.example', 'http://localhost:5173'), origins, noProxy)).toBe(true);
    expect(originAllowed(handshake('lit.example', 'http://dash.example'), origins, noProxy)).toBe(false);
    expect(originAllowed(handshake('lit.example', 'https://dash.example.evil.example'), origins, noProxy)).toBe(false);
    expect(originAllowed(handshake('lit.example', 'https://evil.example'), ['*'], noProxy)).toBe(true);
    expect(originAllowed(handshake('lit.example', 'null'), ['*'], noProxy)).toBe(true);
  });

  it('refuses other sites, "null" (sandboxed and file: pages) and a handshake without a usable Host', () => {
    expect(originAllowed(handshake('lit.example', 'https://evil.example'), [], noProxy)).toBe(false);
    expect(originAllowed(handshake('lit.example', 'null'), [], noProxy)).toBe(false);
    expect(originAllowed(handshake(undefined, 'https://lit.example'), [], noProxy)).toBe(false);
    expect(originAllowed(handshake('lit.example', 'not a url'), [], noProxy)).toBe(false);
  });

  it('behind a trusted proxy (TRUST_PROXY), the host is X-Forwarded-Host\'s last entry, as Fastify reads it', () => {
    expect(originAllowed(handshake('app:3000', 'https://lit.example', 'lit.example'), [], proxy)).toBe(true);
    expect(originAllowed(handshake('app:3000', 'https://lit.example', 'evil.example, lit.example'), [], proxy)).toBe(true);
    expect(originAllowed(handshake('app:3000', 'https://evil.example', 'lit.example, evil.example'), [], proxy)).toBe(true);
    expect(originAllowed(handshake('app:3000', 'https://evil.example', 'lit.example'), [], proxy)).toBe(false);
    // From a peer that is no trusted proxy, X-Forwarded-Host is the client's word: Host decides.
    expect(originAllowed(handshake('app:3000', 'https://lit.example', 'lit.example'), [], noProxy)).toBe(false);
    expect(originAllowed(handshake('lit.example', 'https://lit.example', 'other.example'), [], noProxy)).toBe(true);
  });
});
