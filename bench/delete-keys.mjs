// Shared by the bench scripts: deletes every key of a bench run's prefix, the plain ones and
// the hash-tagged ones (`{prefix…}`: compactions, series metadata, rate-limit counters).
export async function deleteKeys(redis, keyPrefix) {
  for (const pattern of [`${keyPrefix}*`, `{${keyPrefix}*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  }
}
