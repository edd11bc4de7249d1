import { once } from 'node:events';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo, connect } from 'node:net';
import type { FastifyReply } from 'fastify';
import { NotificationsController } from './notifications.controller.js';
import { ClientSlot, NotificationsService } from './notifications.service.js';
import { Subject } from 'rxjs';

/** A response whose client hung up before the handler ran (e.g. while the rate-limit guard waited for Redis). */
async function closedResponse(): Promise<{ req: IncomingMessage; res: ServerResponse; done: () => Promise<void> }> {
  let got!: (exchange: [IncomingMessage, ServerResponse]) => void;
  const arrived = new Promise<[IncomingMessage, ServerResponse]>((resolve) => (got = resolve));
  const server = createServer((req, res) => got([req, res]));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
  const [req, res] = await arrived;
  const closed = once(res, 'close');
  socket.destroy();
  await closed;
  return { req, res, done: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('NotificationsController GET /events', () => {
  it('frees the slot of a client that was gone before the handler ran (its close event already fired)', async () => {
    const hub = new Subject<never>();
    let connected = 0;
    const notifications = {
      connect: (): ClientSlot => {
        connected++;
        return { notifications: hub, release: () => connected-- };
      },
    } as unknown as NotificationsService;
    const { req, res, done } = await closedResponse();
    const reply = { request: { method: 'GET', raw: req }, hijack: () => undefined, raw: res } as unknown as FastifyReply;
    try {
      new NotificationsController(notifications).events(reply);
      expect(connected).toBe(0);
      expect(hub.observed).toBe(false);
    } finally {
      await done();
    }
  });
});
