import { type ChainableCommander, Command, type Pipeline } from 'ioredis';
import type { RedisClient } from './redis.types.js';

/**
 * A command on one key that ioredis' command table does not list — module commands such as
 * TS.*. ioredis finds the keys of the commands it knows; for any other command a Cluster picks
 * a random node and follows the MOVED reply (an extra round trip; a MULTI sent to the wrong
 * node is aborted and re-sent). Declaring the key routes the command straight to the node that
 * owns the key's slot. On a single server it changes nothing.
 */
export class KeyedCommand extends Command {
  constructor(
    name: string,
    private readonly routingKey: string,
    args: string[],
  ) {
    // utf8 replies, like `redis.call`.
    super(name, [routingKey, ...args], { replyEncoding: 'utf8' });
  }

  /** Cluster routing (Command.getSlot) and the same-slot check of pipelines read this. */
  override getKeys(): string[] {
    return [this.routingKey];
  }
}

/** `redis.call(name, key, ...args)`, routed by `key` on a cluster. */
export function callOnKey(redis: RedisClient, name: string, key: string, ...args: string[]): Promise<unknown> {
  const command = new KeyedCommand(name, key, args);
  void redis.sendCommand(command); // settles command.promise
  return command.promise as Promise<unknown>;
}

/** Queues `name key ...args` in a MULTI or pipeline, routed by `key` on a cluster. */
export function queueOnKey(tx: ChainableCommander, name: string, key: string, ...args: string[]): ChainableCommander {
  // multi() and pipeline() return a Pipeline; its typings only omit sendCommand.
  (tx as unknown as Pipeline).sendCommand(new KeyedCommand(name, key, args));
  return tx;
}
