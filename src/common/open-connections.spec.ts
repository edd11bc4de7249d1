import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { OpenConnections } from './open-connections.js';

/** A real HTTP server on loopback: GET /held is answered only once released, everything else at once. */
describe('OpenConnections.dropUnanswerable', () => {
  let server: Server;
  let connections: OpenConnections;
  const held: ServerResponse[] = [];
  const clients: Socket[] = [];
  const accepted: Socket[] = [];

  beforeEach(async () => {
    server = createServer((req, res) => {
      if (req.url === '/held') held.push(res);
      else if (req.method === 'POST') req.resume().on('end', () => res.end('body read'));
      else res.end('quick');
    });
    server.on('connection', (socket: Socket) => accepted.push(socket));
    connections = OpenConnections.track(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  afterEach(async () => {
    for (const socket of clients.splice(0)) socket.destroy();
    accepted.length = 0;
    held.length = 0;
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  /** A connection that has sent `bytes`, with everything it receives and whether it closed. */
  async function client(bytes: string) {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    clients.push(socket);
    await once(socket, 'connect');
    const state = { received: '', closed: false };
    socket.on('data', (chunk: Buffer) => (state.received += chunk.toString()));
    socket.on('close', () => (state.closed = true));
    socket.write(bytes);
    return state;
  }

  /** Until the server has read every byte the clients sent and both held requests arrived. */
  async function settled(): Promise<void> {
    const sum = (sockets: Socket[], bytes: (s: Socket) => number) => sockets.reduce((n, s) => n + bytes(s), 0);
    for (let i = 0; i < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const read = sum(accepted, (s) => s.bytesRead);
      if (held.length === 2 && accepted.length === clients.length && read === sum(clients, (s) => s.bytesWritten)) return;
    }
    throw new Error('the server never received every request');
  }

  it('closes idle and stalled connections, and leaves those whose complete request is being answered', async () => {
    const idle = await client('GET /quick HTTP/1.1\r\nHost: x\r\n\r\n');
    const halfHead = await client('GET /quick HTTP/1.1\r\nHost: x\r\n');
    const shortBody = await client('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"');
    const inFlight = await client('GET /held HTTP/1.1\r\nHost: x\r\n\r\n');
    // Pipelined: the second request waits behind the first, which is being answered.
    const pipelined = await client('GET /held HTTP/1.1\r\nHost: x\r\n\r\nGET /quick HTTP/1.1\r\nHost: x\r\n\r\n');
    await settled();
    expect(idle.received).toContain('quick');

    expect(connections.dropUnanswerable()).toBe(0); // the first look only notes what each has sent
    expect(connections.dropUnanswerable()).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect([idle.closed, halfHead.closed, shortBody.closed]).toEqual([true, true, true]);
    expect([inFlight.closed, pipelined.closed]).toEqual([false, false]);

    for (const res of held) res.end('answered');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(inFlight.received).toContain('answered');
    expect(pipelined.received).toMatch(/answered[\s\S]*quick/);
    // Answered and idle now: the next looks close them too.
    connections.dropUnanswerable();
    expect(connections.dropUnanswerable()).toBe(2);
  });

  it('leaves a connection whose bytes are still coming', async () => {
    const slowBody = await client('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12');
    await new Promise((resolve) => setTimeout(resolve, 20));
    connections.dropUnanswerable();
    clients[0].write('345');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(connections.dropUnanswerable()).toBe(0);
    clients[0].write('67890');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(slowBody.received).toContain('body read');
  });
});
