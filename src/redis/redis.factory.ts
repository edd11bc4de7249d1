import { Logger } from '@nestjs/common';
import { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { Env } from '../config/env.validation.js';
import { redactRedisUrl } from './redis-url.js';
import { isCluster, RedisClient } from './redis.types.js';

export type RedisConnectionSettings = Pick<
  Env,
  | 'REDIS_URL'
  | 'REDIS_CONNECT_TIMEOUT_MS'
  | 'REDIS_COMMAND_TIMEOUT_MS'
  | 'REDIS_MAX_RETRIES_PER_REQUEST'
  | 'REDIS_RETRY_BASE_MS'
  | 'REDIS_RETRY_MAX_MS'
  | 'REDIS_STARTUP_WAIT_MS'
  | 'REDIS_PROTOCOL'
> &
  Partial<Pick<Env, 'REDIS_CLUSTER_NODES' | 'REDIS_STARTUP_MODE'>>;

/** Exponential backoff with full jitter on top of the base, capped; never gives up. */
export function reconnectDelay(attempt: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 20));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

export function redisOptions(s: RedisConnectionSettings, name: string): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: name,
    protocol: s.REDIS_PROTOCOL,
    connectTimeout: s.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: s.REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: s.REDIS_MAX_RETRIES_PER_REQUEST,
    retryStrategy: (times) => reconnectDelay(times, s.REDIS_RETRY_BASE_MS, s.REDIS_RETRY_MAX_MS),
    // A request must fail fast while Redis is away instead of queueing behind the reconnect.
    enableOfflineQueue: false,
  };
}

/** "host:port" → ioredis startup node; IPv6 addresses come in brackets ("[::1]:7000"). */
export function parseClusterNode(hostPort: string): { host: string; port: number } {
  const colon = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(colon + 1)) };
}

/**
 * Options of a Cluster client with the same behaviour as the single-server client: every node
 * gets the same timeouts, protocol and the credentials/TLS of REDIS_URL; the cluster as a whole
 * reconnects with the same backoff and, like the single client, rejects commands while it is
 * not ready instead of queueing them.
 */
export function clusterOptions(s: RedisConnectionSettings, name: string): ClusterOptions {
  const url = new URL(s.REDIS_URL);
  // Credentials as ioredis reads them from a single server's URL: the userinfo, else the query.
  const username = url.username ? decodeURIComponent(url.username) : (url.searchParams.get('username') ?? '');
  const password = url.password ? decodeURIComponent(url.password) : (url.searchParams.get('password') ?? '');
  // The cluster owns reconnects and the offline queue of its node connections (ioredis refuses
  // both in redisOptions), so they are set on the cluster instead.
  const { retryStrategy: _retry, enableOfflineQueue: _queue, lazyConnect: _lazy, ...nodeOptions } = redisOptions(s, name);
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    clusterRetryStrategy: (times) => reconnectDelay(times, s.REDIS_RETRY_BASE_MS, s.REDIS_RETRY_MAX_MS),
    // Asking a node for the slot map is a command like any other: same deadline.
    slotsRefreshTimeout: Math.max(s.REDIS_COMMAND_TIMEOUT_MS, 1000),
    // Reads stay on masters: a replica may lag, and the ingest report reads what it just wrote.
    scaleReads: 'master',
    redisOptions: {
      ...nodeOptions,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  };
}

/** Where the client connects, safe to log: the URL without password, or the cluster seed nodes. */
export function describeTarget(s: RedisConnectionSettings): string {
  const nodes = s.REDIS_CLUSTER_NODES ?? [];
  return nodes.length > 0 ? `Redis Cluster (${nodes.join(', ')})` : `Redis at ${redactRedisUrl(s.REDIS_URL)}`;
}

/** A client for the configured target, not yet connected. */
export function createRedisClient(s: RedisConnectionSettings, name: string): RedisClient {
  const nodes = s.REDIS_CLUSTER_NODES ?? [];
  return nodes.length > 0
    ? new Cluster(nodes.map(parseClusterNode), clusterOptions(s, name))
    : new Redis(s.REDIS_URL, redisOptions(s, name));
}

/**
 * Connects and PINGs before the app serves. Waits (the client retries with backoff) up to
 * REDIS_STARTUP_WAIT_MS, then fails with one line naming the URL without its password, or the
 * cluster's seed nodes.
 * REDIS_STARTUP_MODE=degraded returns at once instead: the client keeps reconnecting in the
 * background, requests get 503 and readiness stays red until Redis answers.
 */
export async function connectRedis(s: RedisConnectionSettings, name: string, logger: Logger): Promise<RedisClient> {
  const target = describeTarget(s);
  const client = createRedisClient(s, name);
  let lastError = 'no answer';
  let lastLogged = 0;
  const onError = (err: Error) => {
    // A cluster wraps the node's reason ("Failed to refresh slots cache." + lastNodeError).
    const cause = (err as Error & { lastNodeError?: Error }).lastNodeError;
    lastError = cause ? `${err.message} ${cause.message}` : err.message;
    // Reconnect loops emit an error per attempt; one line every 10 s is enough.
    if (Date.now() - lastLogged > 10_000) {
      lastLogged = Date.now();
      logger.warn(`${target}: ${lastError}`);
    }
  };
  client.on('error', onError);
  client.on('node error', onError); // cluster only: a node failed (e.g. refused the connection)
  const ready = new Promise<void>((resolve) => client.once('ready', () => resolve()));
  client.connect().catch(() => undefined); // failures are retried by the retry strategy; we wait for 'ready'
  if (s.REDIS_STARTUP_MODE === 'degraded') {
    void ready.then(() => logger.log(`Connected to ${target}`));
    logger.warn(`REDIS_STARTUP_MODE=degraded: serving without waiting for ${target}`);
    return client;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), s.REDIS_STARTUP_WAIT_MS);
  });
  try {
    const outcome = await Promise.race([ready, timedOut]);
    if (outcome === 'timeout') {
      throw new Error(`${target} is not reachable after ${s.REDIS_STARTUP_WAIT_MS} ms (${lastError})`);
    }
    await client.ping();
    // A single connection to a cluster node serves only its own slots: the first key of another
    // answered MOVED (the one line startup gave). An INFO an ACL refuses tells nothing: go on.
    if (client instanceof Redis && /^cluster_enabled:1\b/m.test(await client.info('cluster').catch(() => '')) && (await otherClusterNodes(client))) {
      throw new Error(`${target} is a Redis Cluster node: set REDIS_CLUSTER_NODES to the cluster's nodes (REDIS_URL then carries only credentials and TLS)`);
    }
    // ioredis is 'ready' even when its SELECT failed (a DB index past the server's `databases`),
    // and every key would then go to DB 0: select it again, and fail startup if it cannot be.
    const db = client instanceof Redis ? (client.options.db ?? 0) : 0;
    if (db > 0) {
      await client.select(db).catch((err: Error) => {
        throw new Error(`${target}: DB ${db} cannot be selected (${err.message})`);
      });
    }
    logger.log(`Connected to ${target}`);
    await warnIfEvicting(client, logger);
    return client;
  } catch (err) {
    client.disconnect();
    if (err instanceof Error && err.message.startsWith(target)) throw err;
    throw new Error(`${target} did not answer PING: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The series, the verdict and the delivery records have no TTL and must not be evicted: under an
 * allkeys-* policy a full Redis drops history (and on plain Redis half of a series, rebuilt at
 * the next ingest). Said once at startup; an INFO an ACL refuses tells nothing.
 */
async function warnIfEvicting(client: RedisClient, logger: Logger): Promise<void> {
  const info = client instanceof Redis ? await client.info('memory').catch(() => '') : '';
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (policy?.startsWith('allkeys-')) {
    logger.warn(`Redis maxmemory-policy is ${policy}: once full, Redis evicts this service's series and records; use noeviction (or a volatile-* policy)`);
  }
}

/** Whether this cluster node has others (a one-node cluster serves every slot itself); unknown: no. */
async function otherClusterNodes(client: Redis): Promise<boolean> {
  const info = String(await client.call('CLUSTER', 'INFO').catch(() => ''));
  return Number(/^cluster_known_nodes:(\d+)/m.exec(info)?.[1] ?? 1) > 1;
}

/**
 * A second client with the same target and settings, connected (e.g. a pub/sub subscriber: a
 * client in subscriber mode cannot run other commands). On a cluster it is a Cluster too, which
 * subscribes on one node and re-subscribes elsewhere on failover; classic PUBLISH reaches
 * subscribers on every node. The caller owns it: listen for 'error', quit it on shutdown.
 */
export async function duplicateClient(redis: RedisClient): Promise<RedisClient> {
  // Redis#duplicate and Cluster#duplicate have different signatures: a union cannot call it.
  const copy: RedisClient = isCluster(redis) ? redis.duplicate() : redis.duplicate();
  try {
    await copy.connect(); // lazyConnect, like the original; resolves once ready
    return copy;
  } catch (err) {
    copy.disconnect();
    throw err;
  }
}
