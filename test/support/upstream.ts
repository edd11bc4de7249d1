import { readFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';

export type RawRecord = Record<string, unknown>;

/** The recorded SentiCrypt v1 payload (2474 snapshots, 2021-07-06 17:30 → 2021-07-07 17:30 UTC). */
export function loadFixture(): RawRecord[] {
  return JSON.parse(readFileSync(new URL('../fixtures/senticrypt-v1-2021-07-07.json', import.meta.url), 'utf8')) as RawRecord[];
}

export type UpstreamMode =
  | { kind: 'json'; body: unknown }
  | { kind: 'status'; status: number; body?: string }
  | { kind: 'raw'; body: string; contentType?: string }
  | { kind: 'hang' }
  | { kind: 'slow'; body: unknown; delayMs: number }
  /** Answers `body` once `until` resolves: a call the test holds in flight for as long as it needs. */
  | { kind: 'held'; body: unknown; until: Promise<void> };

/**
 * A real HTTP server on 127.0.0.1 standing in for the SentiCrypt API; tests switch what it
 * answers and count the calls it got.
 */
export class FakeUpstream {
  calls = 0;
  mode: UpstreamMode;
  private server!: Server;

  constructor(initial: unknown) {
    this.mode = { kind: 'json', body: initial };
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/bitcoin.json`;
  }

  async start(): Promise<this> {
    this.server = createServer((_req, res) => {
      this.calls++;
      const mode = this.mode;
      if (mode.kind === 'hang') return; // never answers: the client must time out
      if (mode.kind === 'slow') {
        const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(mode.body)), mode.delayMs);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      if (mode.kind === 'held') {
        void mode.until.then(() => {
          if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(mode.body));
        });
        return;
      }
      if (mode.kind === 'status') {
        res.writeHead(mode.status, { 'content-type': 'text/plain' }).end(mode.body ?? 'error');
      } else if (mode.kind === 'raw') {
        res.writeHead(200, { 'content-type': mode.contentType ?? 'application/json' }).end(mode.body);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(mode.body));
      }
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
