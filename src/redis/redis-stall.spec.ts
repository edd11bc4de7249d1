import { EventEmitter } from 'node:events';
import { Command, Redis } from 'ioredis';
import { isRedisUnavailableError } from './redis-errors.js';
import { failFastOnStall, isRedisStalled } from './redis-stall.js';

/** A connection that records what is written to it; the test settles the commands. */
class FakeConnection extends EventEmitter {
  readonly sent: Command[] = [];
  status = 'ready';
  reconnects = 0;
  disconnect(reconnect: boolean): void {
    if (reconnect) this.reconnects++;
  }
  sendCommand(command: Command): unknown {
    this.sent.push(command);
    return command.promise;
  }
}

const settled = async (p: Promise<unknown>) => p.then(() => 'resolved', (e: Error) => e);
const flush = () => new Promise((r) => setImmediate(r));

describe('failFastOnStall', () => {
  const logger = { warn: () => undefined, log: () => undefined };
  let connection: FakeConnection;
  let client: Redis;
  const send = (name: string) => {
    const command = new Command(name, []);
    client.sendCommand(command);
    return command;
  };

  beforeEach(() => {
    connection = new FakeConnection();
    client = connection as unknown as Redis;
    failFastOnStall(client, logger);
  });

  it('sends commands as usual while Redis answers', async () => {
    const get = send('get');
    get.resolve('v');
    expect(await get.promise).toBe('v');
    expect(connection.sent.map((c) => c.name)).toEqual(['get']);
    expect(isRedisStalled(client)).toBe(false);
  });

  it('after a command timed out, refuses the next ones at once (an "unavailable" error), without sending them', async () => {
    const first = send('evalsha');
    first.reject(new Error('Command timed out'));
    await settled(first.promise);
    await flush();
    expect(isRedisStalled(client)).toBe(true);
    const next = send('get');
    const err = await settled(next.promise);
    expect(err).toBeInstanceOf(Error);
    expect(isRedisUnavailableError(err)).toBe(true);
    // Only the timed-out command and the probe PING went out.
    expect(connection.sent.map((c) => c.name)).toEqual(['evalsha', 'ping']);
  });

  it('replaces a connection that answers none of three probe PINGs (a black-holed socket never closes by itself)', async () => {
    const first = send('get');
    first.reject(new Error('Command timed out'));
    await settled(first.promise);
    for (let i = 0; i < 3; i++) {
      await flush();
      const ping = connection.sent.at(-1)!;
      expect(ping.name).toBe('ping');
      expect(connection.reconnects).toBe(0);
      ping.reject(new Error('Command timed out'));
      await settled(ping.promise);
    }
    await flush();
    expect(connection.reconnects).toBe(1);
    expect(connection.sent.map((c) => c.name)).toEqual(['get', 'ping', 'ping', 'ping']);
    // The new connection's 'ready' ends the stall.
    connection.emit('ready');
    expect(isRedisStalled(client)).toBe(false);
  });

  it('other failures (a wrong command, a dropped connection) do not open it', async () => {
    const a = send('get');
    a.reject(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'));
    const b = send('get');
    b.reject(new Error('Connection is closed.'));
    await Promise.all([settled(a.promise), settled(b.promise)]);
    await flush();
    expect(isRedisStalled(client)).toBe(false);
  });

  it('sends again once the probe PING is answered (Redis flows again), and probes again while it times out', async () => {
    const first = send('get');
    first.reject(new Error('Command timed out'));
    await settled(first.promise);
    await flush();
    const probe1 = connection.sent[1];
    probe1.reject(new Error('Command timed out'));
    await settled(probe1.promise);
    await flush();
    expect(isRedisStalled(client)).toBe(true);
    const probe2 = connection.sent[2];
    expect(probe2.name).toBe('ping');
    probe2.resolve('PONG');
    await probe2.promise;
    await flush();
    expect(isRedisStalled(client)).toBe(false);
    const get = send('get');
    get.resolve('v');
    expect(await get.promise).toBe('v');
  });

  it('an error reply to the probe (BUSY, LOADING…) also ends the stall: Redis answers', async () => {
    const first = send('get');
    first.reject(new Error('Command timed out'));
    await settled(first.promise);
    await flush();
    const busy = new Error('BUSY Redis is busy running a script');
    busy.name = 'ReplyError';
    connection.sent[1].reject(busy);
    await flush();
    expect(isRedisStalled(client)).toBe(false);
  });

  it('the stuck socket closing ends the stall, and the handshake of a new socket goes out meanwhile', async () => {
    const first = send('get');
    first.reject(new Error('Command timed out'));
    await settled(first.promise);
    await flush();
    expect(isRedisStalled(client)).toBe(true);
    // Reconnecting: AUTH/HELLO/SELECT/INFO must reach the new socket, or 'ready' never comes.
    connection.status = 'connect';
    send('hello');
    expect(connection.sent.map((c) => c.name)).toEqual(['get', 'ping', 'hello']);
    connection.emit('close');
    expect(isRedisStalled(client)).toBe(false);
  });

  it('a reconnect ends the stall (the stuck socket is gone)', async () => {
    const first = send('get');
    first.reject(new Error('Command timed out'));
    await settled(first.promise);
    await flush();
    connection.sent[1].reject(new Error('Connection is closed.'));
    await flush();
    expect(isRedisStalled(client)).toBe(true);
    connection.emit('ready');
    expect(isRedisStalled(client)).toBe(false);
  });
});
