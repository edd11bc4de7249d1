import { IncomingMessage, request } from 'node:http';
import { AddressInfo, connect, Socket } from 'node:net';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ClientOptions, WebSocket } from 'ws';
import { waitFor } from './wait.js';

/** Listens on a free loopback port and returns it. */
export async function listen(app: NestFastifyApplication): Promise<number> {
  await app.listen(0, '127.0.0.1');
  return (app.getHttpServer().address() as AddressInfo).port;
}

export interface Received {
  id?: string;
  event?: string;
  data: Record<string, unknown>;
}

/** Collects what a stream received and lets a test wait for a message. */
abstract class Collector {
  readonly received: Received[] = [];

  /** The first message at or after `from` matching `match`. */
  next(match: (m: Received) => boolean, what: string, from = 0): Promise<Received> {
    return waitFor(what, () => this.received.slice(from).find(match));
  }

  ofType(type: string): Received[] {
    return this.received.filter((m) => m.data.type === type);
  }
}

/** An EventSource-like reader of GET /events over plain node:http. */
export class SseClient extends Collector {
  response!: IncomingMessage;
  private buffer = '';

  static async open(port: number, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient();
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/events', headers: { accept: 'text/event-stream', ...headers } }, (res) => {
        client.response = res;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => client.feed(chunk));
        res.on('error', () => undefined); // a server-side close mid-stream is fine here
        resolve();
      });
      req.on('error', reject);
      req.end();
    });
    return client;
  }

  close(): void {
    this.response?.destroy();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split('\n')) {
        const i = line.indexOf(': ');
        if (i > 0) fields[line.slice(0, i)] = line.slice(i + 2);
      }
      if (fields.data !== undefined) this.received.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
    }
  }
}

/** A client of the WebSocket at /ws/notifications. */
export class WsClient extends Collector {
  closeCode?: number;
  closeReason?: string;

  private constructor(readonly ws: WebSocket) {
    super();
    // ws' default binaryType ('nodebuffer') hands every message over as one Buffer.
    ws.on('message', (data: Buffer) => this.received.push({ data: JSON.parse(data.toString('utf8')) }));
    ws.on('close', (code, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString('utf8');
    });
    ws.on('error', () => undefined);
  }

  static async open(port: number, options?: ClientOptions): Promise<WsClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/notifications`, options);
    const client = new WsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  close(): void {
    this.ws.terminate();
  }

  /** A handshake the server must refuse before its 101: the answer's status, headers and JSON body. */
  static async refused(port: number, options?: ClientOptions): Promise<{ statusCode: number; headers: IncomingMessage['headers']; body: Record<string, unknown> }> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/notifications`, options);
    return new Promise((resolve, reject) => {
      ws.once('open', () => {
        ws.terminate();
        reject(new Error('the handshake was accepted'));
      });
      ws.once('error', reject);
      // With this listener `ws` leaves the answer to us instead of failing with an error.
      ws.once('unexpected-response', (req, res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.once('end', () => {
          req.destroy();
          resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> });
        });
      });
    });
  }
}

/** Sends a WebSocket handshake on a raw socket (then `then`); tells what the server sent back, as text, and whether it closed the connection. */
export async function silentWebSocket(port: number, headers: Record<string, string> = {}, then = ''): Promise<{ socket: Socket; closed: () => boolean; head: () => string }> {
  const socket = connect({ host: '127.0.0.1', port });
  let received = '';
  let closed = false;
  socket.on('data', (d) => (received += d.toString('latin1')));
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.write(
    `GET /ws/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n${then}`,
    'latin1',
  );
  return { socket, closed: () => closed, head: () => received };
}
