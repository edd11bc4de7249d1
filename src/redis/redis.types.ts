import type { Redis } from 'ioredis';

/** The client every service talks to. A type alias so Cluster support can widen it in one place. */
export type RedisClient = Redis;
