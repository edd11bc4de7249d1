import { Command, Redis } from 'ioredis';
import { RedisStalledError } from './redis-errors.js';
import { isCluster, RedisClient } from './redis.types.js';

/** Message ioredis rejects a command with when REDIS_COMMAND_TIMEOUT_MS passes without a reply. */
const TIMED_OUT = 'Command timed out';
/** Probe PINGs lost in a row before the connection is replaced. */
const PROBES_BEFORE_RECONNECT = 3;

interface StallLogger {
  warn(message: string): void;
  log(message: string): void;
}

type SendCommand = (command: Command, stream?: unknown, node?: unknown) => unknown;

/**
 * Fail fast while Redis is stalled, so a request pays one command timeout, not one per call.
 *
 * One connection carries every command in order, so once a command has gone
 * REDIS_COMMAND_TIMEOUT_MS without a reply (DEBUG SLEEP, a slow script, a paused or overloaded
 * server, a half-open socket), anything sent after it waits behind it and would time out too:
 * a request doing several calls in sequence (rate-limit guard, cache read, then the summary's
 * reads) paid the timeout once per call. From that first timeout until the connection answers
 * again, commands are refused at once with RedisStalledError, which is a "Redis unavailable"
 * error like any other (a 503, the stale summary, the guard failing open). A PING sent behind
 * the stalled command tells when the connection flows again (its reply comes after every
 * earlier one); a reconnect ('ready') also ends the stall. Commands already sent keep their own
 * timeout.
 */
export class StallBreaker {
  /** Epoch ms of the timeout that opened the breaker, or null while commands are sent. */
  private stalledSince: number | null = null;
  private probing = false;
  /** Probe PINGs of this stall that timed out in a row. */
  private probesLost = 0;

  constructor(
    private readonly send: SendCommand,
    private readonly logger: StallLogger,
    private readonly name: string,
    /** Drops the socket and connects again (undefined: never). */
    private readonly reconnect?: () => void,
  ) {}

  get stalled(): boolean {
    return this.stalledSince !== null;
  }

  /** The connection's sendCommand, with the breaker in front. */
  sendCommand(command: Command, stream?: unknown, node?: unknown): unknown {
    if (this.stalledSince !== null) {
      command.reject(new RedisStalledError());
      return command.promise;
    }
    const sent = this.send(command, stream, node);
    command.promise.then(undefined, (err: unknown) => {
      if (err instanceof Error && err.message === TIMED_OUT) this.open();
    });
    return sent;
  }

  /** The connection (re)connected: whatever was stuck on the old socket is gone. */
  reset(): void {
    if (this.stalledSince !== null) this.close('reconnected');
  }

  private open(): void {
    if (this.stalledSince !== null) return;
    this.stalledSince = Date.now();
    this.logger.warn(`${this.name}: a command timed out; failing Redis calls fast until it answers again`);
    this.probe();
  }

  private probe(): void {
    if (this.probing || this.stalledSince === null) return;
    this.probing = true;
    const ping = new Command('ping', [], { replyEncoding: 'utf8' });
    this.send(ping);
    ping.promise.then(
      () => {
        this.probing = false;
        this.close('answers again');
      },
      (err: unknown) => {
        this.probing = false;
        if (!(err instanceof Error)) return;
        // An error reply (BUSY, LOADING…) is still an answer: the connection flows; those commands fail on their own.
        if (err.name === 'ReplyError') this.close('answers again');
        // Still stalled: ask again. Otherwise (connection closed…) 'ready' ends the stall.
        else if (err.message === TIMED_OUT) {
          // A socket whose path died without a reset (a black-holed network, a server replaced
          // behind a proxy) never answers nor closes until TCP gives up, ~15 min: after a few
          // lost probes, a new connection is tried instead (its 'ready' ends the stall).
          if (++this.probesLost >= PROBES_BEFORE_RECONNECT && this.reconnect) {
            this.logger.warn(`${this.name}: no answer to ${this.probesLost} PINGs; reconnecting`);
            this.probesLost = 0;
            this.reconnect();
          } else {
            this.probe();
          }
        }
      },
    );
  }

  private close(why: string): void {
    this.probesLost = 0;
    if (this.stalledSince === null) return;
    const ms = Date.now() - this.stalledSince;
    this.stalledSince = null;
    this.logger.log(`${this.name}: ${why} after ${ms} ms; Redis calls resume`);
  }
}

const BREAKERS = new WeakMap<RedisClient, StallBreaker[]>();

function install(connection: Redis, logger: StallLogger, name: string, reconnect?: () => void): StallBreaker {
  const original = connection.sendCommand.bind(connection) as SendCommand;
  const breaker = new StallBreaker(original, logger, name, reconnect);
  // Only commands on a ready connection queue behind a stuck one. A new socket's handshake (AUTH,
  // HELLO, SELECT, the ready check) must go out, or a reconnect during a stall never completes.
  connection.sendCommand = (command, stream) => (connection.status === 'ready' ? breaker.sendCommand(command, stream) : original(command, stream));
  // The stuck command died with its socket; a new one starts clean.
  connection.on('close', () => breaker.reset());
  connection.on('ready', () => breaker.reset());
  return breaker;
}

/**
 * Puts a StallBreaker on the client's connection: for a Cluster, on each node's connection
 * (a stalled node does not stop commands to the others), including nodes discovered later.
 */
export function failFastOnStall(client: RedisClient, logger: StallLogger): void {
  if (BREAKERS.has(client)) return;
  const breakers: StallBreaker[] = [];
  BREAKERS.set(client, breakers);
  if (!isCluster(client)) {
    // (A cluster's node connections are the cluster's to replace: not done for them.)
    breakers.push(install(client, logger, 'Redis', () => client.disconnect(true)));
    return;
  }
  const seen = new WeakSet<Redis>();
  const add = (node: Redis) => {
    if (seen.has(node)) return;
    seen.add(node);
    const breaker = install(node, logger, `Redis node ${node.options.host}:${node.options.port}`);
    breakers.push(breaker);
    node.once('end', () => {
      const i = breakers.indexOf(breaker);
      if (i >= 0) breakers.splice(i, 1);
    });
  };
  client.nodes('all').forEach(add);
  client.on('+node', add);
}

/** True while a command to (a node of) the client has timed out and Redis has not answered since. */
export function isRedisStalled(client: RedisClient): boolean {
  return BREAKERS.get(client)?.some((b) => b.stalled) ?? false;
}
