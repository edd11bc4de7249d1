import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isCluster, type RedisClient } from '../redis/redis.types.js';
import type { BackendKind } from './timeseries.types.js';
import { errorMessage, isKeyMissingError } from './wire.js';

/**
 * Whether the server has the RedisTimeSeries commands: TS.INFO on a key that cannot exist
 * answers "TSDB: the key does not exist" with the module and "unknown command" without it.
 * Any other answer (NOPERM, connection loss, …) is thrown: it says nothing about the module.
 *
 * On a Redis Cluster every master is asked directly (a series may land on any of them), and
 * they must agree. A master that has the module but not the probe key's slot answers MOVED:
 * Redis looks the command up before it checks the slot, so MOVED also proves the command.
 * Likewise before the ACL: a user whose key patterns leave out the probe key gets NOPERM for
 * that key only from a server that knows TS.INFO (a NOPERM for the command itself is thrown).
 */
export async function detectBackend(redis: RedisClient): Promise<BackendKind> {
  if (!isCluster(redis)) return probe(redis, false);
  const masters = redis.nodes('master');
  if (masters.length === 0) throw new Error('Redis Cluster has no master node to probe');
  const kinds = await Promise.all(masters.map((node) => probe(node, true)));
  if (kinds.every((k) => k === kinds[0])) return kinds[0];
  const list = masters.map((node, i) => `${node.options.host}:${node.options.port}=${kinds[i]}`).join(', ');
  throw new Error(
    `Redis Cluster masters disagree about the RedisTimeSeries module (${list}): load it on every node, or set TIMESERIES_BACKEND=portable`,
  );
}

/** The server answered the probe as no RedisTimeSeries does: the backend must be configured. */
export class UnknownTimeseriesModuleError extends Error {
  override name = 'UnknownTimeseriesModuleError';
}

async function probe(redis: RedisClient | Redis, clusterNode: boolean): Promise<BackendKind> {
  const probeKey = `__timeseries_probe__:${randomUUID()}`;
  try {
    await redis.call('TS.INFO', probeKey);
    return 'native'; // only if someone created that key; still proves the command exists
  } catch (err) {
    const message = errorMessage(err);
    if (/unknown command/i.test(message)) return 'portable';
    if (isKeyMissingError(err)) return 'native';
    // Redis 7+: "No permissions to access a key" / "... the '<key>' key"; 6.2: "... one of the keys".
    if (/^NOPERM\b.*\bno permissions to access\b.*\bkeys?\b/i.test(message)) return 'native';
    if (clusterNode && /^(MOVED|ASK) /.test(message)) return 'native';
    // A reply no RedisTimeSeries gives: another module's TS.* (valkey-timeseries answers
    // `TS: the key "…" does not exist…`), whose replies this service was never checked against.
    // Neither backend is a safe guess (one on data the other wrote would not see it): ask.
    if ((err as Error).name === 'ReplyError' && !/^NOPERM\b/.test(message)) {
      throw new UnknownTimeseriesModuleError(
        `TIMESERIES_BACKEND=auto cannot tell which backend this server takes: TS.INFO on a missing key answered "${message.slice(0, 200)}", which RedisTimeSeries never does. Set TIMESERIES_BACKEND=native (RedisTimeSeries) or portable (plain Redis/Valkey, sorted sets)`,
      );
    }
    throw err;
  }
}
