import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.types.js';

/** A Lua script run with EVALSHA, loaded with EVAL when the server does not have it yet. */
export class LuaScript {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisClient, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Lua, put before a script's body: `now_ms()`, the Redis server's clock in epoch milliseconds.
 * Scripts that age or schedule by it agree across instances whose own clocks differ.
 */
export const LUA_NOW_MS = `local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
`;
