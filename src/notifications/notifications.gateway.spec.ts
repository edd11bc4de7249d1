import type { IncomingMessage } from 'node:http';
import { originAllowed } from './notifications.gateway.js';

const handshake = (host: string | undefined, origin?: string) => ({ headers: { host, origin } }) as unknown as IncomingMessage;

describe('originAllowed (which pages may open the WebSocket)', () => {
  it('lets in clients without Origin (not browsers), whatever CORS_ORIGINS says', () => {
    expect(originAllowed(handshake('lit.example'), [])).toBe(true);
    expect(originAllowed(handshake(undefined), ['https://dash.example'])).toBe(true);
  });

  it('lets in pages of the host the handshake is addressed to, default ports written out or not', () => {
    expect(originAllowed(handshake('lit.example', 'https://lit.example'), [])).toBe(true);
    expect(originAllowed(handshake('lit.example:443', 'https://lit.example'), [])).toBe(true);
    expect(originAllowed(handshake('LIT.example:8080', 'http://lit.example:8080'), [])).toBe(true);
    expect(originAllowed(handshake('lit.example', 'http://lit.example:8080'), [])).toBe(false);
    expect(originAllowed(handshake('lit.example:80', 'https://lit.example'), [])).toBe(false);
    expect(originAllowed(handshake('[::1]:3000', 'http://[::1]:3000'), [])).toBe(true);
  });

  it('lets in the pages of CORS_ORIGINS, each as the browser sends it, or any page with *', () => {
    const origins = ['https://dash.example', 'http://localhost:5173'];
    expect(originAllowed(handshake('lit.example', 'https://dash.example'), origins)).toBe(true);
    expect(originAllowed(handshake('lit.example', 'http://localhost:5173'), origins)).toBe(true);
    expect(originAllowed(handshake('lit.example', 'http://dash.example'), origins)).toBe(false);
    expect(originAllowed(handshake('lit.example', 'https://dash.example.evil.example'), origins)).toBe(false);
    expect(originAllowed(handshake('lit.example', 'https://evil.example'), ['*'])).toBe(true);
    expect(originAllowed(handshake('lit.example', 'null'), ['*'])).toBe(true);
  });

  it('refuses other sites, "null" (sandboxed and file: pages) and a handshake without a usable Host', () => {
    expect(originAllowed(handshake('lit.example', 'https://evil.example'), [])).toBe(false);
    expect(originAllowed(handshake('lit.example', 'null'), [])).toBe(false);
    expect(originAllowed(handshake(undefined, 'https://lit.example'), [])).toBe(false);
    expect(originAllowed(handshake('lit.example', 'not a url'), [])).toBe(false);
  });
});
