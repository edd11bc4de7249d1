import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { isCluster, type RedisClient } from '../../src/redis/redis.types.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test run uses. */
export function uniquePrefix(name: string): string {
  return `test:${name}:${randomBytes(4).toString('hex')}`;
}

/**
 * Deletes every key under `prefix` (SCAN, never KEYS), including `{prefix…}` hash-tagged ones.
 * On a cluster SCAN sees one node only, so every master is scanned, and keys are unlinked one
 * by one (a multi-key UNLINK across slots is a CROSSSLOT error).
 */
export async function deleteKeys(redis: RedisClient, prefix: string): Promise<void> {
  const nodes: Redis[] = isCluster(redis) ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    for (const pattern of [`${prefix}*`, `{${prefix}*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        if (keys.length === 0) continue;
        if (isCluster(redis)) await Promise.all(keys.map((key) => node.unlink(key)));
        else await node.unlink(...keys);
      } while (cursor !== '0');
    }
  }
}
