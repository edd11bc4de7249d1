/**
 * The service on a real Redis Cluster: three masters (no replicas) that this file starts on
 * free ports with `redis-server --cluster-enabled yes` + `redis-cli --cluster create`, with a
 * password, and stops afterwards (also when a test fails). The core scenario runs against it:
 * ingest, summary, cache hit, idempotent re-ingest; then the key layout, the absence of
 * CROSSSLOT/MOVED errors on every node, and the routing of the native backend's TS.* commands.
 */
import { execFileSync } from 'node:child_process';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Cluster, Redis } from 'ioredis';
import { createApp } from '../src/app.factory.js';
import { sameSlotKey } from '../src/redis/key-slot.js';
import { REDIS_CLIENT } from '../src/redis/redis.constants.js';
import { duplicateClient } from '../src/redis/redis.factory.js';
import { RedisClient } from '../src/redis/redis.types.js';
import { NativeTimeseriesBackend } from '../src/timeseries/native.backend.js';
import { metaKey, PortableTimeseriesBackend } from '../src/timeseries/portable.backend.js';
import { TimeseriesService } from '../src/timeseries/timeseries.service.js';
import { VerdictService } from '../src/verdict/verdict.service.js';
import { bootApp, postRefresh } from './support/app.js';
import { expectSummaryBody } from './support/expected-summary.js';
import { deleteKeys, uniquePrefix } from './support/redis.js';
import { LocalRedisCluster } from './support/redis-cluster.js';
import { FakeUpstream, loadFixture } from './support/upstream.js';
import { waitFor } from './support/wait.js';

const fixture = loadFixture();
const PASSWORD = 'cluster-s3cret';

/** The suite needs redis-server and redis-cli ≥ 7 (`--cluster-port`) on PATH; CI has them. */
const missing = missingClusterTools();
if (missing) console.warn(`Redis Cluster e2e skipped: ${missing}`);
const describeCluster = missing ? describe.skip : describe;

describe('startup on a Redis Cluster that is not there (e2e)', () => {
  it('fails with one line naming the seed nodes and the reason, no password', async () => {
    await expect(
      createApp({
        REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2',
        REDIS_URL: 'redis://:topsecret@127.0.0.1:6379',
        REDIS_STARTUP_WAIT_MS: '300',
        LOG_LEVEL: 'fatal',
      }),
    ).rejects.toThrow(/^Redis Cluster \(127\.0\.0\.1:1, 127\.0\.0\.1:2\) is not reachable after 300 ms \((?!.*topsecret)[^\n]*\)$/);
  });
});

describeCluster('Redis Cluster, 3 masters (e2e)', () => {
  let cluster: LocalRedisCluster;
  let nodes: Map<number, Redis>; // standalone connections per node port, no cluster routing
  let upstream: FakeUpstream;
  let app: NestFastifyApplication | undefined;
  let prefix: string;
  /** What the nodes offer: 'native' with the RedisTimeSeries module (e.g. Redis 8), else 'portable'. */
  let kind: 'native' | 'portable';
  /** Which master's port owns each slot, from CLUSTER SLOTS. */
  let owners: Array<{ from: number; to: number; port: number }>;

  const series = (metric: string) => `${prefix}:${metric}:mean:30s`;
  const anyNode = () => [...nodes.values()][0];
  const slotOf = async (key: string) => anyNode().cluster('KEYSLOT', key);
  const ownerOf = async (key: string) => {
    const slot = await slotOf(key);
    return owners.find((o) => slot >= o.from && slot <= o.to)!.port;
  };
  const get = (url: string) => app!.inject({ method: 'GET', url });
  const post = (url: string) => postRefresh(app!, url);
  /** INFO errorstats of every node, e.g. { 7001: { ERR: 2 } }. */
  const errorStats = async () => {
    const out: Record<number, Record<string, number>> = {};
    for (const [port, redis] of nodes) {
      const info = await redis.info('errorstats');
      out[port] = Object.fromEntries([...info.matchAll(/^errorstat_(\w+):count=(\d+)/gm)].map(([, name, n]) => [name, Number(n)]));
    }
    return out;
  };

  beforeAll(async () => {
    cluster = await LocalRedisCluster.start(3, PASSWORD);
    nodes = new Map(cluster.ports.map((port) => [port, cluster.connect(port)]));
    owners = (await anyNode().cluster('SLOTS')).map(([from, to, [, port]]) => ({ from, to, port }));
    // A prefix whose two series and cache entry live on three different masters, so the
    // scenario really spans the cluster (each candidate has a 6/27 chance).
    const base = uniquePrefix('cluster');
    for (let i = 0; ; i++) {
      prefix = `${base}-${i}`;
      const ports = await Promise.all([series('price'), series('sentiment'), `${prefix}:cache`].map(ownerOf));
      if (new Set(ports).size === 3) break;
    }
    const [tsInfo] = await anyNode().command('INFO', 'TS.INFO');
    kind = tsInfo ? 'native' : 'portable';
    upstream = await new FakeUpstream(fixture).start();
    app = await bootApp({
      REDIS_CLUSTER_NODES: cluster.seeds,
      // On a cluster REDIS_URL only carries the credentials (and TLS); its host is not used.
      REDIS_URL: `redis://:${PASSWORD}@unused.invalid:6379`,
      REDIS_KEY_PREFIX: prefix,
      SENTIMENT_API_URL: upstream.url,
    });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await upstream?.stop();
    for (const redis of nodes?.values() ?? []) redis.disconnect();
    await cluster?.stop();
  });

  it('talks to the cluster through an ioredis Cluster client and picks the backend the nodes offer', async () => {
    const client = app!.get<RedisClient>(REDIS_CLIENT);
    expect(client).toBeInstanceOf(Cluster);
    expect((client as Cluster).nodes('master').map((n) => n.options.port).sort()).toEqual([...cluster.ports].sort());
    expect(app!.get(TimeseriesService).kind).toBe(kind);
  });

  it('POST /refresh ingests the whole payload across the masters', async () => {
    const res = await post('/refresh');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      fetched: 2474,
      invalid: 0,
      stored: 4948,
      duplicates: 0,
      rejected: 0,
      series: { price: { stored: 2474, duplicates: 0, rejected: 0 }, sentiment: { stored: 2474, duplicates: 0, rejected: 0 } },
    });
    // Each series is on its own master (portable: a sorted set plus its metadata hash).
    for (const metric of ['price', 'sentiment']) {
      expect(await app!.get(TimeseriesService).info(series(metric))).toMatchObject({
        totalSamples: 2474,
        duplicatePolicy: 'first',
        labels: { metric, source: 'senticrypt', app: 'is-bitcoin-lit' },
      });
      const owner = nodes.get(await ownerOf(series(metric)))!;
      if (kind === 'native') {
        expect(await owner.type(series(metric))).toBe('TSDB-TYPE');
      } else {
        expect(await owner.zcard(series(metric))).toBe(2474);
        expect(await owner.hget(metaKey(series(metric)), 'duplicatePolicy')).toBe('first');
      }
    }
  });

  it('GET /is-bitcoin-lit answers the hourly averages computed from the fixture', async () => {
    const res = await get('/is-bitcoin-lit');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.hourly_average_of_averages.map((h: { time: string }) => h.time)).toEqual([
      '2021-07-07T15:00:00.000Z',
      '2021-07-07T16:00:00.000Z',
      '2021-07-07T17:00:00.000Z',
    ]);
    expectSummaryBody(body, fixture);
  });

  it('caches the summary on the master that owns the cache key: MISS, then HIT', async () => {
    const owner = nodes.get(await ownerOf(`${prefix}:cache`))!;
    await owner.del(`${prefix}:cache`);
    const miss = await get('/is-bitcoin-lit');
    expect(miss.statusCode).toBe(200);
    expect(miss.headers['x-cache']).toBe('MISS');
    const stored = JSON.parse((await owner.get(`${prefix}:cache`)) as string);
    expect(stored.value).toEqual(miss.json());
    expect(await owner.ttl(`${prefix}:cache`)).toBeGreaterThan(100);
    const hit = await get('/is-bitcoin-lit');
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual(miss.json());
  });

  it('re-ingesting everything stores nothing twice', async () => {
    const res = await post('/refresh?full=true');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ fetched: 2474, skipped: 0, stored: 0, duplicates: 4948, rejected: 0 });
  });

  it('keeps every key its commands touch together in one slot, and the series and cache on three masters', async () => {
    for (const metric of ['price', 'sentiment']) {
      expect(await slotOf(metaKey(series(metric)))).toBe(await slotOf(series(metric)));
      expect(await slotOf(sameSlotKey(series(metric), 'avg:1h'))).toBe(await slotOf(series(metric)));
    }
    const ports = await Promise.all([series('price'), series('sentiment'), `${prefix}:cache`].map(ownerOf));
    expect(new Set(ports).size).toBe(3);
    // Every key the app wrote is one of these, each on the master its slot says.
    const everyKey: string[] = [];
    for (const [port, redis] of nodes) {
      const keys = await allKeys(redis);
      for (const key of keys) expect(await ownerOf(key)).toBe(port);
      everyKey.push(...keys);
    }
    const verdict = `${prefix}:verdict`;
    const metas = kind === 'portable' ? [metaKey(series('price')), metaKey(series('sentiment')), metaKey(verdict)] : [];
    // Compactions ({series}:agg:bucket, and their metadata on portable) sit in their source's slot.
    const compactions = everyKey.filter((k) => /\}:(sum|count|min|max|first|last):1[hd](:meta)?$/.test(k));
    expect(compactions).toHaveLength(2 * 12 * (kind === 'portable' ? 2 : 1));
    for (const key of compactions) {
      const source = key.slice(1, key.indexOf('}'));
      expect([series('price'), series('sentiment')]).toContain(source);
      expect(await slotOf(key)).toBe(await slotOf(source));
    }
    // Rate-limit counters: both keys of a counter share a slot (hash tag), so its script never spans slots.
    const throttle = everyKey.filter((k) => k.includes(':throttle:'));
    expect(throttle.length).toBeGreaterThan(0);
    expect(throttle.every((k) => k.startsWith(`{${prefix}:throttle:`))).toBe(true);
    const others = everyKey.filter((k) => !compactions.includes(k) && !throttle.includes(k));
    // The verdict series, and its state (its changes list, written by the same script, would be `{state}:changes`).
    expect(others.sort()).toEqual(
      [series('price'), series('sentiment'), verdict, `${prefix}:verdict:state`, ...metas, `${prefix}:cache`, `${prefix}:ingest:last-success`].sort(),
    );
  });

  it('sent every command straight to the right master: no CROSSSLOT, no MOVED, no ASK on any node', async () => {
    const stats = await errorStats();
    for (const port of cluster.ports) {
      expect(stats[port]).not.toHaveProperty('CROSSSLOT');
      expect(stats[port]).not.toHaveProperty('MOVED');
      expect(stats[port]).not.toHaveProperty('ASK');
    }
    // Portable: scripts are cached per node; the first EVALSHA on each series' master answered
    // NOSCRIPT and the EVAL fallback went to that same master (or MOVED would show above).
    // Native: the TS.* commands, unknown to ioredis, went straight to the owner too.
    for (const metric of kind === 'portable' ? ['price', 'sentiment'] : []) {
      expect(stats[await ownerOf(series(metric))].NOSCRIPT).toBeGreaterThanOrEqual(1);
    }
  });

  it('routes the native backend\'s TS.* commands (unknown to ioredis) to the master owning the key', async () => {
    for (const redis of nodes.values()) await redis.config('RESETSTAT');
    const native = new NativeTimeseriesBackend(app!.get<RedisClient>(REDIS_CLIENT));
    const rangeKey = series('price');
    const addKey = series('sentiment');
    if (kind === 'native') {
      // Each TS.* command shows in the commandstats of the node that ran it, and nowhere a MOVED.
      const newest = Math.max(...fixture.map((r) => Math.trunc((r.timestamp as number) * 1000)));
      expect(await native.range({ key: rangeKey, from: newest, to: newest })).toHaveLength(1);
      expect(await native.addMany(addKey, [{ timestamp: newest, value: 1 }])).toEqual([{ status: 'duplicate' }]);
      for (const [port, redis] of nodes) {
        const calls = Number(/^cmdstat_ts\.range:calls=(\d+)/im.exec(await redis.info('commandstats'))?.[1] ?? 0);
        expect(calls).toBe([await ownerOf(rangeKey), await ownerOf(addKey)].filter((p) => p === port).length);
      }
      for (const stats of Object.values(await errorStats())) expect(stats).not.toHaveProperty('MOVED');
      return;
    }
    // These nodes have no module, so each TS.* command fails with "unknown command" — on the
    // node it was sent to, which errorstats tell.
    await expect(native.range({ key: rangeKey, from: 0, to: 1 })).rejects.toThrow(/unknown command/i);
    await expect(native.latest(rangeKey)).rejects.toThrow(/unknown command/i);
    // MULTI / TS.RANGE / TS.MADD / EXEC: both commands refused while queueing, EXEC aborts.
    await expect(native.addMany(addKey, [{ timestamp: 1, value: 1 }])).rejects.toThrow(/EXECABORT/);
    const stats = await errorStats();
    const expected: Record<number, Record<string, number>> = Object.fromEntries(cluster.ports.map((p) => [p, {}]));
    expected[await ownerOf(rangeKey)] = { ERR: 2 };
    expected[await ownerOf(addKey)] = { ERR: 2, EXECABORT: 1 };
    expect(stats).toEqual(expected);
  });

  it('pub/sub: a duplicate of the app client in subscriber mode gets a PUBLISH sent through any master', async () => {
    const client = app!.get<RedisClient>(REDIS_CLIENT);
    const subscriber = await duplicateClient(client);
    try {
      expect(subscriber).toBeInstanceOf(Cluster);
      const channel = `${prefix}:events`;
      const received = new Promise<string>((resolve) => subscriber.once('message', (_channel: string, message: string) => resolve(message)));
      await subscriber.subscribe(channel);
      // Classic PUBLISH is broadcast over the cluster bus, whichever node gets it.
      for (const redis of nodes.values()) await redis.publish(channel, 'ingested');
      expect(await received).toBe('ingested');
    } finally {
      subscriber.disconnect();
    }
  });

  it('a verdict change is published by its transition script on the master owning the state, and reaches a subscriber on the cluster', async () => {
    const client = app!.get<RedisClient>(REDIS_CLIENT);
    const subscriber = await duplicateClient(client);
    try {
      const messages: string[] = [];
      subscriber.on('message', (_channel: string, message: string) => messages.push(message));
      await subscriber.subscribe(`${prefix}:events`);
      const verdicts = app!.get(VerdictService);
      const summary = (verdict: 'lit' | 'cold', asOf: string) => ({ verdict, as_of: asOf, verdict_since: null }) as unknown as Parameters<VerdictService['record']>[0];
      await verdicts.record(summary('lit', '2031-03-01T01:00:00.000Z'));
      await verdicts.record(summary('cold', '2031-03-01T02:00:00.000Z'));
      await waitFor('the change', () => messages.some((m) => (JSON.parse(m) as { verdict?: string }).verdict === 'cold'));
      expect(JSON.parse(messages.at(-1)!)).toMatchObject({ type: 'verdict.changed', previous: 'lit', verdict: 'cold', since: '2031-03-01T02:00:00.000Z' });
    } finally {
      subscriber.disconnect();
    }
  });

  // Resharding moves a slot's keys a few at a time: the portable add script also writes the
  // series' compactions, and one of them already moved must fail it before it writes anything
  // (Redis does not roll a script back), as Redis unavailable, not as an internal error.
  it('portable: an add whose compactions are already on the next master fails before writing, then succeeds once the slot has moved', async () => {
    if (kind !== 'portable') return; // the module writes its own compactions
    const key = series('price');
    const slot = await slotOf(key);
    const srcPort = await ownerOf(key);
    const dstPort = cluster.ports.find((p) => p !== srcPort)!;
    const [src, dst] = [nodes.get(srcPort)!, nodes.get(dstPort)!];
    const [srcId, dstId] = await Promise.all([src.cluster('MYID'), dst.cluster('MYID')]);
    const hourly = (await src.cluster('GETKEYSINSLOT', slot, 1000)).filter((k) => k.endsWith(':1h'));
    expect(hourly.length).toBe(6);
    const moveAll = async (keys: string[]) => {
      for (const k of keys) await src.call('MIGRATE', '127.0.0.1', String(dstPort), k, '0', '5000', 'AUTH', PASSWORD);
    };
    // Samples stored on one node, through its own connection (no routing), whatever the layout.
    const samplesOn = async (node: Redis) => (await new PortableTimeseriesBackend(node).info(key))?.totalSamples ?? 0;
    const before = await samplesOn(src);
    const last = fixture[fixture.length - 1];
    upstream.mode = { kind: 'json', body: [...fixture, { ...last, timestamp: (last.timestamp as number) + 3600 }] };
    await dst.cluster('SETSLOT', slot, 'IMPORTING', srcId);
    await src.cluster('SETSLOT', slot, 'MIGRATING', dstId);
    try {
      await moveAll(hourly);
      const res = await post('/refresh');
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ message: 'The data store is temporarily unavailable; try again shortly' });
      expect(await samplesOn(src)).toBe(before); // nothing of the price add was written
    } finally {
      await moveAll(await src.cluster('GETKEYSINSLOT', slot, 1000));
      for (const node of nodes.values()) await node.cluster('SETSLOT', slot, 'NODE', dstId);
    }
    await waitFor('the add stored once the slot has moved', async () => (await post('/refresh')).json<{ series: { price?: { stored: number } } }>().series.price?.stored === 1);
    expect(await samplesOn(dst)).toBe(before + 1);
    // The new sample is in the history (its hour, the open one, is read from the raw series).
    const t = Math.trunc((last.timestamp as number) * 1000) + 3_600_000;
    const hours = await get(`/series/price?from=${t - 2 * 3_600_000}&to=${t}&bucket=1h&aggregation=count`);
    expect(hours.statusCode).toBe(200);
    expect(hours.json<Array<{ value: number }>>().at(-1)?.value).toBe(1);
    // The rate limit writes its counters up to 50 ms after a request (FLUSH_MS): let the last
    // ones land before the next test deletes every key and counts what is left.
    await new Promise((resolve) => setTimeout(resolve, 300));
  });

  it('test cleanup reaches every master', async () => {
    await deleteKeys(app!.get<RedisClient>(REDIS_CLIENT), prefix);
    for (const redis of nodes.values()) expect(await redis.dbsize()).toBe(0);
  });

  it('refuses to start on one cluster node given as REDIS_URL, saying to set REDIS_CLUSTER_NODES', async () => {
    await expect(createApp({ REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${cluster.ports[0]}`, REDIS_STARTUP_WAIT_MS: '5000', LOG_LEVEL: 'fatal' })).rejects.toThrow(
      /^Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ is a Redis Cluster node: set REDIS_CLUSTER_NODES/,
    );
  });

  it('refuses to start with a wrong password, in one line naming the seed nodes', async () => {
    await expect(
      createApp({
        REDIS_CLUSTER_NODES: cluster.seeds,
        REDIS_URL: 'redis://:wrong-password@unused.invalid:6379',
        // Time enough for a loaded machine's AUTH round trip, whose WRONGPASS the line must name.
        REDIS_STARTUP_WAIT_MS: '3000',
        LOG_LEVEL: 'fatal',
      }),
    ).rejects.toThrow(/^Redis Cluster \(127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+\) is not reachable after 3000 ms \([^\n]*WRONGPASS[^\n]*\)$/);
  });

  it('QUITs every node connection on shutdown', async () => {
    const client = app!.get<RedisClient>(REDIS_CLIENT) as Cluster;
    const ended = new Promise((resolve) => client.once('end', resolve));
    await app!.close();
    app = undefined;
    await ended; // the cluster emits 'end' once every node connection has closed
    expect(client.status).toBe('end');
  });
});

/** Every key on one node (SCAN; this throwaway cluster holds only the test's keys). */
async function allKeys(redis: Redis): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

/** Why this machine cannot start a local cluster, or null when it can. */
function missingClusterTools(): string | null {
  for (const tool of ['redis-server', 'redis-cli']) {
    let version: string;
    try {
      version = execFileSync(tool, ['--version'], { encoding: 'utf8' });
    } catch {
      return `${tool} is not on PATH`;
    }
    const major = Number(/(?:v=|redis-cli )(\d+)\./.exec(version)?.[1]);
    if (!(major >= 7)) return `${tool} ${version.trim()} is older than 7`;
  }
  return null;
}
