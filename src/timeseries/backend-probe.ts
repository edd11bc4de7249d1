import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../redis/redis.types.js';
import type { BackendKind } from './timeseries.types.js';
import { errorMessage } from './wire.js';

/**
 * Whether the server has the RedisTimeSeries commands: TS.INFO on a key that cannot exist
 * answers "TSDB: the key does not exist" with the module and "unknown command" without it.
 * Any other answer (NOPERM, connection loss, …) is thrown: it says nothing about the module.
 */
export async function detectBackend(redis: RedisClient): Promise<BackendKind> {
  const probeKey = `__timeseries_probe__:${randomUUID()}`;
  try {
    await redis.call('TS.INFO', probeKey);
    return 'native'; // only if someone created that key; still proves the command exists
  } catch (err) {
    const message = errorMessage(err);
    if (/unknown command/i.test(message)) return 'portable';
    if (/TSDB: (the )?key does not exist/i.test(message)) return 'native';
    throw err;
  }
}
