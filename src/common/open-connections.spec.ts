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

  /** Polls `done` every 10 ms, for up to 2 s. */
  async function until(what: string, done: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    if (!done()) throw new Error(`timed out waiting for ${what}`);
  }

  /** Until the server has read every byte the clients sent. */
  const allRead = () =>
    accepted.length === clients.length && accepted.reduce((n, s) => n + s.bytesRead, 0) === clients.reduce((n, s) => n + s.bytesWritten, 0);

  it('closes idle and stalled connections, and leaves those whose complete request is being answered', async () => {
    const idle = await client('GET /quick HTTP/1.1\r\nHost: x\r\n\r\n');
    const halfHead = await client('GET /quick HTTP/1.1\r\nHost: x\r\n');
    const shortBody = await client('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"');
    const inFlight = await client('GET /held HTTP/1.1\r\nHost: x\r\n\r\n');
    // Pipelined behind a request being answered: a complete one, and one whose body stalls.
    const pipelined = await client('GET /held HTTP/1.1\r\nHost: x\r\n\r\nGET /quick HTTP/1.1\r\nHost: x\r\n\r\n');
    const pipelinedShort = await client('GET /held HTTP/1.1\r\nHost: x\r\n\r\nPOST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"');
    await until('every request to arrive', () => held.length === 3 && allRead() && idle.received.includes('quick'));

    expect(connections.dropUnanswerable()).toBe(0); // the first look only notes what each has sent
    expect(connections.dropUnanswerable()).toBe(3);
    expect(connections.dropUnanswerable()).toBe(0); // not counted again before they leave the set (on 'close')
    await until('the three to close', () => idle.closed && halfHead.closed && shortBody.closed);
    expect([inFlight.closed, pipelined.closed, pipelinedShort.closed]).toEqual([false, false, false]);

    for (const res of held) res.end('answered');
    await until('the answers', () => /answered[\s\S]*quick/.test(pipelined.received) && inFlight.received.includes('answered') && pipelinedShort.received.includes('answered'));
    // Now idle, or (the last) stuck in a body: their bytes were noted above, so this look closes them.
    expect(connections.dropUnanswerable()).toBe(3);
    await until('the rest to close', () => inFlight.closed && pipelined.closed && pipelinedShort.closed);
  });

  // A WebSocket handshake handed over once the gateway had gone (one pipelined behind an answer
  // at shutdown): nothing answered or closed it, and the shutdown waited for it until its timeout.
  it('closes an upgraded connection nothing answers, like an idle one', async () => {
    server.on('upgrade', () => undefined);
    const orphan = await client('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    await until('the handshake to arrive', allRead);
    expect(connections.dropUnanswerable()).toBe(0);
    expect(connections.dropUnanswerable()).toBe(1);
    await until('it to close', () => orphan.closed);
  });

  it('leaves a connection whose bytes are still coming', async () => {
    const slowBody = await client('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12');
    await until('the first bytes', allRead);
    connections.dropUnanswerable();
    clients[0].write('345');
    await until('more bytes', allRead);
    expect(connections.dropUnanswerable()).toBe(0);
    clients[0].write('67890');
    await until('the answer', () => slowBody.received.includes('body read'));
    expect(slowBody.closed).toBe(false);
  });
});
