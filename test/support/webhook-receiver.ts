import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';

/** What a receiver answers to its n-th request (1-based): a status (and headers), or no answer at all. */
export type Reply = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

export interface ReceivedHook {
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A real HTTP server on 127.0.0.1 standing in for a webhook receiver: records every request
 * (headers and body) and answers as `reply` says; `open` counts requests not answered yet.
 */
export class WebhookReceiver {
  readonly received: ReceivedHook[] = [];
  open = 0;
  private server!: Server;

  constructor(public reply: (n: number) => Reply = () => ({ status: 200 })) {}

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const reply = this.reply(this.received.length);
        if (reply === 'hang') {
          this.open++;
          res.on('close', () => this.open--);
          return;
        }
        res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers }).end(reply.body ?? 'RECEIVER-BODY-must-not-be-logged');
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
