import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.types.js';

/** Clients whose server has no EVALSHA_RO (before Redis 7): their read-only scripts run with EVALSHA. */
const withoutReadOnlyEval = new WeakSet<RedisClient>();

/**
 * The error of a server without EVALSHA_RO / EVAL_RO (Redis 6: `ERR unknown command 'evalsha_ro'…`),
 * or of an ACL user allowed EVALSHA but not them (`NOPERM … 'evalsha_ro' command`).
 */
function isUnavailableReadOnlyEval(err: unknown): boolean {
  return err instanceof Error && /^(ERR unknown command|NOPERM)\b.*\b(evalsha_ro|eval_ro)\b/i.test(err.message);
}

/**
 * A Lua script run with EVALSHA, loaded with EVAL when the server does not have it yet.
 *
 * A `readOnly` script (one that only reads) runs with EVALSHA_RO / EVAL_RO where the server has
 * them (Redis 7+, Valkey): Redis treats a plain EVALSHA as a possible write, so a
 * `CLIENT PAUSE WRITE` (what `FAILOVER` and a cluster's manual failover do while the replica
 * catches up) held every read made by script until the pause ended or the command timed out.
 * A server without them (Redis 6), or an ACL user not allowed them, answers so once per
 * client; that client then uses EVALSHA.
 */
export class LuaScript {
  private readonly sha: string;

  constructor(
    private readonly source: string,
    private readonly readOnly = false,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisClient, keys: string[], args: string[]): Promise<unknown> {
    if (this.readOnly && !withoutReadOnlyEval.has(redis)) {
      try {
        return await this.runAs(redis, 'evalsha_ro', 'eval_ro', keys, args);
      } catch (err) {
        if (!isUnavailableReadOnlyEval(err)) throw err;
        withoutReadOnlyEval.add(redis);
      }
    }
    return this.runAs(redis, 'evalsha', 'eval', keys, args);
  }

  private async runAs(redis: RedisClient, bySha: 'evalsha' | 'evalsha_ro', bySource: 'eval' | 'eval_ro', keys: string[], args: string[]): Promise<unknown> {
    try {
      return await redis[bySha](this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis[bySource](this.source, keys.length, ...keys, ...args);
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
