import { Cluster, type Redis } from 'ioredis';

/**
 * The client every service talks to: one Redis server, or a Redis Cluster when
 * REDIS_CLUSTER_NODES is set. Both speak the same commands; on a cluster every command must
 * keep to one hash slot (see key-slot.ts and docs/cluster.md).
 */
export type RedisClient = Redis | Cluster;

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}
