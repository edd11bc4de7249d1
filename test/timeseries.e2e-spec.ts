/**
 * Time-series backends against the real Redis at REDIS_URL. The backend under test is the one
 * detectBackend picks for that server, so this same file exercises the native backend on
 * Redis 8 / Redis Stack and the portable one on plain Redis / Valkey. Expected values are
 * written out or computed here with textbook formulas, never by the code under test.
 */
import { Redis } from 'ioredis';
import { detectBackend } from '../src/timeseries/backend-probe.js';
import { NativeTimeseriesBackend } from '../src/timeseries/native.backend.js';
import { metaKey, PortableTimeseriesBackend } from '../src/timeseries/portable.backend.js';
import { sameSlotKey } from '../src/redis/key-slot.js';
import type { Aggregation, Sample, TimeseriesBackend } from '../src/timeseries/timeseries.types.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { RedisServerProcess } from './support/redis-server.js';

/** A multiple of 10 s, so 1 s and 10 s buckets start exactly at T0. */
const T0 = 1_700_000_000_000;
const BUCKET = 1000;

/** Hand-made samples with negative values; bucket T0+2000 stays empty. */
const DATA: Sample[] = [
  { timestamp: T0 + 100, value: 2 },
  { timestamp: T0 + 400, value: -1.5 },
  { timestamp: T0 + 900, value: 4.25 },
  { timestamp: T0 + 1000, value: -3 },
  { timestamp: T0 + 1500, value: 0.5 },
  { timestamp: T0 + 3200, value: 10 },
  { timestamp: T0 + 3999, value: -2 },
];
const BUCKETS: Array<[number, number[]]> = [
  [T0, [2, -1.5, 4.25]],
  [T0 + 1000, [-3, 0.5]],
  [T0 + 3000, [10, -2]],
];

type Expected = Record<Exclude<Aggregation, 'twa'>, number>;

/** Textbook statistics (two-pass variance), values in timestamp order. */
function reference(values: number[]): Expected {
  const n = values.length;
  const sum = values.reduce((a, v) => a + v, 0);
  const mean = sum / n;
  const squares = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return {
    avg: mean,
    sum,
    min,
    max,
    range: max - min,
    count: n,
    first: values[0],
    last: values[n - 1],
    'var.p': squares / n,
    'var.s': n > 1 ? squares / (n - 1) : 0,
    'std.p': Math.sqrt(squares / n),
    'std.s': n > 1 ? Math.sqrt(squares / (n - 1)) : 0,
  };
}

const EXACT = ['avg', 'sum', 'min', 'max', 'range', 'count', 'first', 'last'] as const;
const APPROX = ['var.p', 'var.s', 'std.p', 'std.s'] as const;

/** Values whose shortest decimal form must come back as the very same double. */
const AWKWARD = [0.1, -6.295081967213113e-2, 33885.23, 1 / 3, 0.2, -123456.789e-10, 1e21, 5e-7, 2 ** 53 + 2];

const prefix = uniquePrefix('ts');

/** What the server at REDIS_URL offers; the parity suite below needs the module. */
const serverKind = await (async () => {
  const probe = new Redis(REDIS_URL);
  try {
    return await detectBackend(probe);
  } finally {
    probe.disconnect();
  }
})();

afterAll(async () => {
  const redis = new Redis(REDIS_URL);
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

describe.each([2, 3] as const)('time-series backend over RESP%i (e2e, real Redis)', (protocol) => {
  let redis: Redis;
  let backend: TimeseriesBackend;
  let n = 0;
  /** A fresh key for each test. */
  const key = (name: string) => `${prefix}:p${protocol}:${name}:${++n}`;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { protocol });
    backend = (await detectBackend(redis)) === 'native' ? new NativeTimeseriesBackend(redis) : new PortableTimeseriesBackend(redis);
  });

  afterAll(() => redis.disconnect());

  async function seriesWith(name: string, samples: Sample[], retentionMs = 0): Promise<string> {
    const k = key(name);
    await backend.ensureSeries(k, { retentionMs, labels: { test: 'timeseries' } });
    const outcomes = await backend.addMany(k, samples);
    expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
    return k;
  }

  it('creates an empty series whose info shows the settings', async () => {
    const k = key('empty');
    await backend.ensureSeries(k, { retentionMs: 3_600_000, labels: { metric: 'price', unit: 'usd' } });
    expect(await backend.info(k)).toEqual({
      key: k,
      totalSamples: 0,
      firstTimestamp: 0,
      lastTimestamp: 0,
      retentionMs: 3_600_000,
      duplicatePolicy: 'first',
      labels: { metric: 'price', unit: 'usd' },
      sourceKey: null,
      rules: [],
    });
    expect(await backend.latest(k)).toBeNull();
    expect(await backend.range({ key: k, from: 0, to: T0 })).toEqual([]);
  });

  it('answers null / [] for a missing series and rejects adds to it like TS.MADD', async () => {
    const k = key('missing');
    expect(await backend.info(k)).toBeNull();
    expect(await backend.latest(k)).toBeNull();
    expect(await backend.range({ key: k, from: 0, to: T0 })).toEqual([]);
    expect(await backend.addMany(k, [{ timestamp: T0, value: 1 }, { timestamp: T0 + 1, value: 2 }])).toEqual([
      { status: 'rejected', reason: 'TSDB: the key is not a TSDB key' },
      { status: 'rejected', reason: 'TSDB: the key is not a TSDB key' },
    ]);
    expect(await redis.exists(k)).toBe(0);
  });

  it('stores samples given out of order and returns them in timestamp order', async () => {
    const k = key('raw');
    await backend.ensureSeries(k, { retentionMs: 0, labels: {} });
    const shuffled = [DATA[3], DATA[0], DATA[6], DATA[1], DATA[5], DATA[2], DATA[4]];
    expect(await backend.addMany(k, shuffled)).toEqual(shuffled.map(() => ({ status: 'stored' })));
    expect(await backend.range({ key: k, from: 0, to: T0 + 10_000 })).toEqual(DATA);
    expect(await backend.range({ key: k, from: T0 + 400, to: T0 + 1000 })).toEqual(DATA.slice(1, 4));
    expect(await backend.latest(k)).toEqual({ timestamp: T0 + 3999, value: -2 });
    expect(await backend.info(k)).toMatchObject({ totalSamples: 7, firstTimestamp: T0 + 100, lastTimestamp: T0 + 3999 });
  });

  it('round-trips values exactly', async () => {
    const samples = AWKWARD.map((value, i) => ({ timestamp: T0 + i, value }));
    const k = await seriesWith('exact', samples);
    const back = await backend.range({ key: k, from: T0, to: T0 + 100 });
    expect(back.map((s) => s.timestamp)).toEqual(samples.map((s) => s.timestamp));
    back.forEach((s, i) => expect(s.value).toBe(AWKWARD[i])); // toBe is Object.is: bit-exact
    expect(await backend.latest(k)).toEqual({ timestamp: T0 + AWKWARD.length - 1, value: 2 ** 53 + 2 });
  });

  describe('aggregation', () => {
    let k: string;
    beforeAll(async () => {
      k = await seriesWith('agg', DATA);
    });

    it.each([...EXACT, ...APPROX])('%s: epoch-aligned buckets, no empty bucket, reference values', async (type) => {
      const buckets = await backend.range({ key: k, from: 0, to: T0 + 10_000, aggregation: { type, bucketMs: BUCKET } });
      expect(buckets.map((b) => b.timestamp)).toEqual([T0, T0 + 1000, T0 + 3000]);
      buckets.forEach((b) => expect(b.timestamp % BUCKET).toBe(0));
      buckets.forEach((b, i) => {
        const expected = reference(BUCKETS[i][1])[type];
        if ((EXACT as readonly string[]).includes(type)) expect(b.value).toBe(expected);
        else expect(b.value).toBeCloseTo(expected, 12);
      });
    });

    it('gives the hand-computed values of the first bucket (2, -1.5, 4.25)', async () => {
      const first = async (type: Aggregation) =>
        (await backend.range({ key: k, from: 0, to: T0 + 999, aggregation: { type, bucketMs: BUCKET } }))[0];
      expect(await first('sum')).toEqual({ timestamp: T0, value: 4.75 });
      expect(await first('min')).toEqual({ timestamp: T0, value: -1.5 });
      expect(await first('max')).toEqual({ timestamp: T0, value: 4.25 });
      expect(await first('range')).toEqual({ timestamp: T0, value: 5.75 });
      expect(await first('count')).toEqual({ timestamp: T0, value: 3 });
      expect(await first('first')).toEqual({ timestamp: T0, value: 2 });
      expect(await first('last')).toEqual({ timestamp: T0, value: 4.25 });
      expect((await first('avg')).value).toBe(4.75 / 3);
      // mean 19/12; Σ(x - 19/12)² = (5/12)² + (37/12)² + (32/12)² = 2418/144 = 403/24
      expect((await first('var.p')).value).toBeCloseTo(403 / 72, 12);
      expect((await first('var.s')).value).toBeCloseTo(403 / 48, 12);
      expect((await first('std.p')).value).toBeCloseTo(Math.sqrt(403 / 72), 12);
      expect((await first('std.s')).value).toBeCloseTo(Math.sqrt(403 / 48), 12);
    });

    it('labels a first bucket cut by `from` with its aligned start, and cuts the last one at `to`', async () => {
      const cut = (type: Aggregation) =>
        backend.range({ key: k, from: T0 + 400, to: T0 + 1200, aggregation: { type, bucketMs: BUCKET } });
      // Bucket T0 holds only the samples >= from (-1.5, 4.25); bucket T0+1000 only <= to (-3).
      expect(await cut('count')).toEqual([
        { timestamp: T0, value: 2 },
        { timestamp: T0 + 1000, value: 1 },
      ]);
      expect(await cut('sum')).toEqual([
        { timestamp: T0, value: 2.75 },
        { timestamp: T0 + 1000, value: -3 },
      ]);
      expect(await cut('first')).toEqual([
        { timestamp: T0, value: -1.5 },
        { timestamp: T0 + 1000, value: -3 },
      ]);
      expect((await cut('var.s'))[1]).toEqual({ timestamp: T0 + 1000, value: 0 }); // one sample
    });

    it('aligns buckets that do not divide T0 on the epoch, not on `from`', async () => {
      const bucketMs = 7000;
      const from = T0 + 123;
      const buckets = await backend.range({ key: k, from, to: T0 + 10_000, aggregation: { type: 'count', bucketMs } });
      const expected = new Map<number, number>();
      for (const s of DATA.filter((s) => s.timestamp >= from)) {
        const start = Math.floor(s.timestamp / bucketMs) * bucketMs;
        expected.set(start, (expected.get(start) ?? 0) + 1);
      }
      expect(buckets).toEqual([...expected].map(([timestamp, value]) => ({ timestamp, value })));
      buckets.forEach((b) => expect(b.timestamp % bucketMs).toBe(0));
      expect(buckets[0].timestamp).toBeLessThan(from);
    });

    it('handles twa: native computes it, the portable backend says it is not supported', async () => {
      const twa = backend.range({ key: k, from: 0, to: T0 + 10_000, aggregation: { type: 'twa', bucketMs: BUCKET } });
      if (backend.kind === 'portable') {
        await expect(twa).rejects.toThrow(/twa.*not supported/);
      } else {
        const buckets = await twa;
        expect(buckets.map((b) => b.timestamp)).toEqual([T0, T0 + 1000, T0 + 3000]);
      }
    });
  });

  it('keeps the first value of a duplicate timestamp and reports it (DUPLICATE_POLICY FIRST)', async () => {
    const k = key('dup');
    await backend.ensureSeries(k, { retentionMs: 0, labels: {} });
    expect(await backend.addMany(k, [{ timestamp: T0, value: 1.5 }])).toEqual([{ status: 'stored' }]);
    expect(
      await backend.addMany(k, [
        { timestamp: T0, value: 9 },
        { timestamp: T0 + 1, value: 2 },
        { timestamp: T0 + 1, value: 7 },
      ]),
    ).toEqual([{ status: 'duplicate' }, { status: 'stored' }, { status: 'duplicate' }]);
    expect(await backend.range({ key: k, from: T0, to: T0 + 1 })).toEqual([
      { timestamp: T0, value: 1.5 },
      { timestamp: T0 + 1, value: 2 },
    ]);
    expect(await backend.info(k)).toMatchObject({ totalSamples: 2 });
  });

  it('refuses samples older than newest - retention, the newest advancing within a batch', async () => {
    const k = key('retention');
    await backend.ensureSeries(k, { retentionMs: 1000, labels: {} });
    const tooOld = { status: 'rejected', reason: 'TSDB: Timestamp is older than retention' };
    expect(await backend.addMany(k, [{ timestamp: T0 + 5000, value: 1 }])).toEqual([{ status: 'stored' }]);
    expect(
      await backend.addMany(k, [
        { timestamp: T0 + 3999, value: 2 }, // 1001 ms behind the newest
        { timestamp: T0 + 4000, value: 3 }, // exactly the retention: kept
      ]),
    ).toEqual([tooOld, { status: 'stored' }]);
    expect(
      await backend.addMany(k, [
        { timestamp: T0 + 6000, value: 4 }, // newest becomes T0+6000
        { timestamp: T0 + 4500, value: 5 }, // now 1500 ms behind
        { timestamp: T0 + 5000, value: 9 }, // within retention, already there
      ]),
    ).toEqual([{ status: 'stored' }, tooOld, { status: 'duplicate' }]);
    // T0+4000 is now beyond retention (older than T0+6000 - 1000): never returned nor counted.
    expect(await backend.range({ key: k, from: 0, to: T0 + 10_000 })).toEqual([
      { timestamp: T0 + 5000, value: 1 },
      { timestamp: T0 + 6000, value: 4 },
    ]);
    expect(await backend.range({ key: k, from: 0, to: T0 + 10_000, aggregation: { type: 'count', bucketMs: 10_000 } })).toEqual([
      { timestamp: T0, value: 2 },
    ]);
    expect(await backend.info(k)).toMatchObject({
      totalSamples: 2,
      firstTimestamp: T0 + 5000,
      lastTimestamp: T0 + 6000,
      retentionMs: 1000,
    });
    expect(await backend.latest(k)).toEqual({ timestamp: T0 + 6000, value: 4 });
  });

  it('answers invalid samples with the module error texts and stores the valid ones', async () => {
    const k = key('invalid');
    await backend.ensureSeries(k, { retentionMs: 0, labels: {} });
    expect(
      await backend.addMany(k, [
        { timestamp: T0, value: NaN },
        { timestamp: T0 + 0.5, value: 1 },
        { timestamp: -1, value: 1 },
        { timestamp: T0, value: 3 },
      ]),
    ).toEqual([
      { status: 'rejected', reason: 'TSDB: invalid value' },
      { status: 'rejected', reason: 'TSDB: invalid timestamp' },
      { status: 'rejected', reason: 'TSDB: invalid timestamp, must be a nonnegative integer' },
      { status: 'stored' },
    ]);
  });

  it('ensureSeries is idempotent and brings an existing series to the new retention and labels', async () => {
    const k = key('ensure');
    await backend.ensureSeries(k, { retentionMs: 0, labels: { metric: 'price', unit: 'usd' } });
    await backend.addMany(k, [{ timestamp: T0, value: 1 }]);
    await backend.ensureSeries(k, { retentionMs: 60_000, labels: { metric: 'price', source: 'test' } });
    await backend.ensureSeries(k, { retentionMs: 60_000, labels: { metric: 'price', source: 'test' } });
    expect(await backend.info(k)).toEqual({
      key: k,
      totalSamples: 1,
      firstTimestamp: T0,
      lastTimestamp: T0,
      retentionMs: 60_000,
      duplicatePolicy: 'first',
      labels: { metric: 'price', source: 'test' },
      sourceKey: null,
      rules: [],
    });
    await backend.ensureSeries(k, { retentionMs: 60_000, labels: {} });
    expect((await backend.info(k))?.labels).toEqual({});
    expect(await backend.latest(k)).toEqual({ timestamp: T0, value: 1 });
  });

  describe('compaction rules', () => {
    const ruleOf = (dest: string, aggregation: Aggregation = 'sum', bucketMs = BUCKET) => ({ destKey: dest, aggregation, bucketMs });
    /** A source with rules into fresh destinations, in the source's slot. */
    async function withRules(name: string, aggregations: Aggregation[]) {
      const source = key(name);
      await backend.ensureSeries(source, { retentionMs: 0, labels: {} });
      const dests: Record<string, string> = {};
      for (const aggregation of aggregations) {
        dests[aggregation] = sameSlotKey(source, `${aggregation}:1s`);
        await backend.ensureSeries(dests[aggregation], { retentionMs: 0, labels: { aggregation } });
        expect(await backend.ensureRule(source, ruleOf(dests[aggregation], aggregation))).toEqual({ created: true, sourceLatestAtCreation: null });
      }
      return { source, dests };
    }

    it('creates a rule once, shows it in info on both sides, and refuses a different one', async () => {
      const { source, dests } = await withRules('rule', ['sum']);
      expect(await backend.ensureRule(source, ruleOf(dests.sum))).toEqual({ created: false, sourceLatestAtCreation: null });
      expect(await backend.info(source)).toMatchObject({ sourceKey: null, rules: [{ destKey: dests.sum, aggregation: 'sum', bucketMs: BUCKET }] });
      expect(await backend.info(dests.sum)).toMatchObject({ sourceKey: source, rules: [], labels: { aggregation: 'sum' } });
      await expect(backend.ensureRule(source, ruleOf(dests.sum, 'max'))).rejects.toThrow(/exists as sum 1000 ms, not max 1000 ms/);
      await expect(backend.ensureRule(source, ruleOf(sameSlotKey(source, 'missing')))).rejects.toThrow(/does not exist/);
    });

    it('writes a bucket when a later bucket starts; the open bucket is not written yet', async () => {
      const aggs: Aggregation[] = ['sum', 'count', 'min', 'max', 'first', 'last', 'avg', 'std.p'];
      const { source, dests } = await withRules('compact', aggs);
      await backend.addMany(source, DATA);
      for (const agg of aggs) {
        const written = await backend.range({ key: dests[agg], from: 0, to: T0 + 100_000 });
        // Buckets T0 and T0+1000 are closed; T0+3000 (the newest sample's) is still open.
        expect(written.map((s) => s.timestamp)).toEqual([T0, T0 + 1000]);
        written.forEach((s, i) => expect(s.value).toBeCloseTo(reference(BUCKETS[i][1])[agg as keyof Expected], 12));
      }
      // A sample in a later bucket closes T0+3000.
      await backend.addMany(source, [{ timestamp: T0 + 5000, value: 1 }]);
      expect(await backend.range({ key: dests.sum, from: 0, to: T0 + 100_000 })).toEqual([
        { timestamp: T0, value: 4.75 },
        { timestamp: T0 + 1000, value: -2.5 },
        { timestamp: T0 + 3000, value: 8 },
      ]);
    });

    it('recomputes a closed bucket from the source when a sample arrives late, and ignores duplicates', async () => {
      const { source, dests } = await withRules('late', ['sum', 'first', 'count']);
      await backend.addMany(source, DATA);
      expect(await backend.addMany(source, [{ timestamp: T0 + 50, value: 100 }, { timestamp: T0 + 100, value: 7 }])).toEqual([
        { status: 'stored' },
        { status: 'duplicate' },
      ]);
      // Late into the open bucket: its aggregate is re-read before it is written.
      await backend.addMany(source, [{ timestamp: T0 + 3100, value: 1 }, { timestamp: T0 + 4000, value: 0 }]);
      expect(await backend.range({ key: dests.sum, from: 0, to: T0 + 100_000 })).toEqual([
        { timestamp: T0, value: 104.75 },
        { timestamp: T0 + 1000, value: -2.5 },
        { timestamp: T0 + 3000, value: 9 },
      ]);
      expect((await backend.range({ key: dests.first, from: 0, to: T0 + 100_000 }))[0]).toEqual({ timestamp: T0, value: 100 });
      expect((await backend.range({ key: dests.count, from: 0, to: T0 + 100_000 })).map((s) => s.value)).toEqual([4, 2, 3]);
    });

    it('in one call: closes a bucket, takes a late sample into a closed one, closes the next from the updated source', async () => {
      const { source, dests } = await withRules('onecall', ['sum', 'count', 'max']);
      await backend.addMany(source, DATA);
      expect(
        await backend.addMany(source, [
          { timestamp: T0 + 5000, value: 1 }, // closes T0+3000
          { timestamp: T0 + 3500, value: 20 }, // late into T0+3000, just written
          { timestamp: T0 + 50, value: 100 }, // late into T0
          { timestamp: T0 + 50, value: 5 }, // duplicate within the call
          { timestamp: T0 + 5500, value: 2 },
          { timestamp: T0 + 6000, value: 0 }, // closes T0+5000
        ]),
      ).toEqual(['stored', 'stored', 'stored', 'duplicate', 'stored', 'stored'].map((status) => ({ status })));
      const written = async (agg: string) => (await backend.range({ key: dests[agg], from: 0, to: T0 + 100_000 })).map((s) => s.value);
      expect(await written('sum')).toEqual([104.75, -2.5, 28, 3]);
      expect(await written('count')).toEqual([4, 2, 3, 2]);
      expect(await written('max')).toEqual([100, 0.5, 20, 2]);
    });

    it('compacts a batch in one call exactly as the same samples one call each (buckets closed within the call, late and duplicate samples)', async () => {
      const aggs: Aggregation[] = ['sum', 'count', 'min', 'max', 'first', 'last', 'std.p'];
      const value = (i: number) => Math.sin(i) * 1000 + AWKWARD[i % AWKWARD.length] / 7;
      const samples = Array.from({ length: 400 }, (_, i) => ({ timestamp: T0 + i * 37, value: value(i) }));
      // Late samples into a closed bucket and the open one, a duplicate, out of order within the batch.
      samples.splice(150, 0, { timestamp: T0 + 40 * 37 + 5, value: 3.5 }, { timestamp: T0 + 149 * 37 - 3, value: -2 }, { timestamp: T0 + 37, value: 9 });
      const batch = await withRules('batch', aggs);
      const single = await withRules('single', aggs);
      await backend.addMany(batch.source, samples.slice(0, 10));
      await backend.addMany(single.source, samples.slice(0, 10));
      await backend.addMany(batch.source, samples.slice(10));
      for (const s of samples.slice(10)) await backend.addMany(single.source, [s]);
      for (const agg of aggs) {
        const written = await backend.range({ key: batch.dests[agg], from: 0, to: T0 + 100_000 });
        expect(written.length).toBeGreaterThan(10);
        expect(written).toEqual(await backend.range({ key: single.dests[agg], from: 0, to: T0 + 100_000 }));
      }
    });

    it('does not back-fill: samples stored before the rule are not compacted', async () => {
      const source = key('nobackfill');
      const dest = sameSlotKey(source, 'count:1s');
      await backend.ensureSeries(source, { retentionMs: 0, labels: {} });
      await backend.ensureSeries(dest, { retentionMs: 0, labels: {} });
      await backend.addMany(source, DATA.slice(0, 4)); // T0+100 … T0+1000
      expect(await backend.ensureRule(source, ruleOf(dest, 'count'))).toEqual({
        created: true,
        sourceLatestAtCreation: { timestamp: T0 + 1000, value: -3 },
      });
      await backend.addMany(source, DATA.slice(4)); // T0+1500, T0+3200, T0+3999
      // Bucket T0 never gets written; bucket T0+1000 only counts what came after the rule.
      expect(await backend.range({ key: dest, from: 0, to: T0 + 100_000 })).toEqual([{ timestamp: T0 + 1000, value: 1 }]);
    });

    // The module's upsert path (upsertCompaction) re-reads the newest bucket into the rule's running
    // aggregate even before the rule has opened a bucket, and handleCompaction then opens its first
    // bucket without resetting it: that bucket also holds the newest bucket's samples. History keeps
    // away from that bucket (CompactionService's settle_after mark); the backends agree on it.
    /** A source holding bucket T0 (2, -1.5, 4.25), then count and sum rules created over it. */
    async function rulesOverData(name: string) {
      const source = key(name);
      const dests = { count: sameSlotKey(source, 'count:1s'), sum: sameSlotKey(source, 'sum:1s') };
      await backend.ensureSeries(source, { retentionMs: 0, labels: {} });
      await backend.addMany(source, DATA.slice(0, 3));
      for (const [aggregation, dest] of Object.entries(dests) as Array<[Aggregation, string]>) {
        await backend.ensureSeries(dest, { retentionMs: 0, labels: {} });
        await backend.ensureRule(source, ruleOf(dest, aggregation));
      }
      return { source, dests };
    }

    it.each([
      ['a duplicate', { timestamp: T0 + 400, value: 99 }],
      ['a late sample', { timestamp: T0 + 500, value: 1 }],
    ])('a rule created over stored data: %s into the newest bucket first makes the first bucket it writes hold that bucket too', async (_, upsert) => {
      const { source, dests } = await rulesOverData(`upsertfirst${upsert.timestamp}`);
      await backend.addMany(source, [upsert]);
      await backend.addMany(source, [DATA[4], DATA[5]]); // T0+1500 opens the rule's first bucket, T0+3200 closes it
      const extra = upsert.value === 99 ? [] : [upsert.value];
      const held = [2, -1.5, 4.25, ...extra, 0.5];
      expect(await backend.range({ key: dests.count, from: 0, to: T0 + 100_000 })).toEqual([{ timestamp: T0 + 1000, value: held.length }]);
      expect(await backend.range({ key: dests.sum, from: 0, to: T0 + 100_000 })).toEqual([{ timestamp: T0 + 1000, value: held.reduce((a, v) => a + v, 0) }]);
    });

    it('that first bucket keeps what the upsert re-read and what came in order, not samples arriving late in between', async () => {
      const { source, dests } = await rulesOverData('upsertseed');
      await backend.addMany(source, [{ timestamp: T0 + 400, value: 99 }]); // a duplicate: bucket T0 re-read
      await backend.addMany(source, [DATA[5]]); // T0+3200 (10): the rule's first bucket, T0+3000
      await backend.addMany(source, [DATA[4], { timestamp: T0 + 500, value: 1 }]); // late: T0+1500 (0.5), T0+500 (1)
      await backend.addMany(source, [{ timestamp: T0 + 3300, value: 0.25 }, { timestamp: T0 + 4100, value: 0 }]); // closes T0+3000
      // The late samples' closed buckets are recomputed whole; the first bucket holds T0 as re-read, then 10 and 0.25.
      expect(await backend.range({ key: dests.count, from: 0, to: T0 + 100_000 })).toEqual([
        { timestamp: T0, value: 4 },
        { timestamp: T0 + 1000, value: 1 },
        { timestamp: T0 + 3000, value: 5 },
      ]);
      expect(await backend.range({ key: dests.sum, from: 0, to: T0 + 100_000 })).toEqual([
        { timestamp: T0, value: 5.75 },
        { timestamp: T0 + 1000, value: 0.5 },
        { timestamp: T0 + 3000, value: 15 },
      ]);
    });

    it('an upsert into the first bucket once it is open re-reads that bucket alone', async () => {
      const { source, dests } = await rulesOverData('upsertreset');
      await backend.addMany(source, [{ timestamp: T0 + 400, value: 99 }, DATA[5]]); // bucket T0 re-read, then the first bucket opens
      await backend.addMany(source, [{ timestamp: T0 + 3100, value: 1 }]); // late into it: the module re-reads T0+3000 only
      await backend.addMany(source, [{ timestamp: T0 + 4100, value: 0 }]);
      expect(await backend.range({ key: dests.count, from: 0, to: T0 + 100_000 })).toEqual([{ timestamp: T0 + 3000, value: 2 }]);
    });
  });

  it('refuses to ensure a series over a key holding another type', async () => {
    const k = key('string');
    await redis.set(k, 'not a series');
    await expect(backend.ensureSeries(k, { retentionMs: 0, labels: {} })).rejects.toThrow(/not a time series/);
    expect(await redis.get(k)).toBe('not a series');
  });
});

/** Redis Cluster key slot: CRC16 (XMODEM) of the hash tag, or of the whole key, mod 16384. */
function clusterSlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * The portable backend's own key layout, read with plain sorted-set and hash commands: on a
 * redis-server of its own, so it holds wherever REDIS_URL points (Redis 8 / RedisTimeSeries too).
 */
describe('portable backend storage layout (e2e, private redis-server)', () => {
  let server: RedisServerProcess;
  let redis: Redis;
  let portable: PortableTimeseriesBackend;
  beforeAll(async () => {
    server = await RedisServerProcess.start();
    redis = new Redis(server.url);
    portable = new PortableTimeseriesBackend(redis);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.destroy();
  });

  it('computes cluster slots like Redis', () => {
    expect(clusterSlot('foo')).toBe(12182); // CLUSTER KEYSLOT foo
    expect(clusterSlot('{user1000}.following')).toBe(clusterSlot('user1000'));
  });

  it('keeps samples in a sorted set at the key, value text verbatim, and metadata at {key}:meta', async () => {
    const k = `${prefix}:layout`;
    await portable.ensureSeries(k, { retentionMs: 5000, labels: { b: '2', a: '1' } });
    await portable.addMany(k, [
      { timestamp: T0 + 1, value: -6.295081967213113e-2 },
      { timestamp: T0, value: 0.1 },
    ]);
    expect(metaKey(k)).toBe(`{${k}}:meta`);
    expect(await redis.zrange(k, '0', '-1', 'WITHSCORES')).toEqual([
      `${T0}:0.1`,
      String(T0),
      `${T0 + 1}:-0.06295081967213113`,
      String(T0 + 1),
    ]);
    expect(await redis.hgetall(metaKey(k))).toEqual({
      retention: '5000',
      duplicatePolicy: 'first',
      labels: JSON.stringify([
        ['b', '2'],
        ['a', '1'],
      ]),
    });
    // Both keys hash to one cluster slot, so each script may touch both.
    expect(clusterSlot(metaKey(k))).toBe(clusterSlot(k));
  });

  it('keeps metadata in the slot of a key with its own hash tag', async () => {
    const k = `{${prefix}}:tagged`;
    await portable.ensureSeries(k, { retentionMs: 0, labels: {} });
    expect(metaKey(k)).toBe(`${k}:meta`);
    expect(await redis.exists(metaKey(k))).toBe(1);
    expect(clusterSlot(metaKey(k))).toBe(clusterSlot(k));
  });

  it('refuses keys with braces but no hash tag (no companion key could share their slot)', async () => {
    await expect(portable.ensureSeries(`${prefix}:{}:x`, { retentionMs: 0, labels: {} })).rejects.toThrow(/braces/);
  });

  it('refuses keys with braces that form no hash tag (they would split series and metadata across slots)', async () => {
    await expect(portable.ensureSeries(`${prefix}:{}x`, { retentionMs: 0, labels: {} })).rejects.toThrow(/braces/);
  });

  it('rebuilds a series whose metadata went away (evicted), its rules included, and keeps refusing a foreign sorted set', async () => {
    const source = `${prefix}:evicted`;
    const dest = sameSlotKey(source, 'sum:1h');
    await portable.ensureSeries(source, { retentionMs: 0, labels: { a: '1' } });
    await portable.ensureSeries(dest, { retentionMs: 0, labels: {} });
    await portable.ensureRule(source, { destKey: dest, aggregation: 'sum', bucketMs: 3_600_000 });
    await portable.addMany(source, [{ timestamp: T0, value: 1 }, { timestamp: T0 + 3_600_000, value: 2 }]);

    // The source's metadata is gone: it is rebuilt around its samples, and the rule attached again as a new one.
    await redis.del(metaKey(source));
    await portable.ensureSeries(source, { retentionMs: 0, labels: { a: '1' } });
    await portable.ensureSeries(dest, { retentionMs: 0, labels: {} });
    expect(await portable.ensureRule(source, { destKey: dest, aggregation: 'sum', bucketMs: 3_600_000 })).toMatchObject({ created: true });
    expect(await portable.range({ key: source, from: 0, to: T0 + 3_600_000 })).toHaveLength(2);
    // Like any rule created over stored data: the bucket open at its creation is not back-filled
    // (the history readers' marks keep it out of what the compaction is trusted for).
    await portable.addMany(source, [{ timestamp: T0 + 7_200_000, value: 3 }, { timestamp: T0 + 10_800_000, value: 4 }]);
    const hour = (t: number) => t - (t % 3_600_000);
    expect(await portable.range({ key: dest, from: 0, to: T0 + 10_800_000 })).toEqual([
      { timestamp: hour(T0), value: 1 },
      { timestamp: hour(T0 + 7_200_000), value: 3 },
    ]);

    // The destination's: rebuilt too, and it names its source again.
    await redis.del(metaKey(dest));
    await portable.ensureSeries(dest, { retentionMs: 0, labels: {} });
    expect(await portable.ensureRule(source, { destKey: dest, aggregation: 'sum', bucketMs: 3_600_000 })).toMatchObject({ created: false });
    expect(await redis.hget(metaKey(dest), 'source')).toBe(source);

    // A sorted set that holds no samples of ours is still not taken over.
    const foreign = `${prefix}:leaderboard`;
    await redis.zadd(foreign, 10, 'alice');
    await expect(portable.ensureSeries(foreign, { retentionMs: 0, labels: {} })).rejects.toThrow(/not a time series/);
    expect(await redis.exists(metaKey(foreign))).toBe(0);
  });

  it('keeps a compaction destination and its metadata in the source slot, rule state in the metadata', async () => {
    const source = `${prefix}:slot`;
    const dest = sameSlotKey(source, 'sum:1h');
    expect(dest).toBe(`{${source}}:sum:1h`);
    await portable.ensureSeries(source, { retentionMs: 0, labels: {} });
    await portable.ensureSeries(dest, { retentionMs: 0, labels: {} });
    await portable.ensureRule(source, { destKey: dest, aggregation: 'sum', bucketMs: 3_600_000 });
    await portable.addMany(source, [{ timestamp: T0, value: 1 }]);
    expect(metaKey(dest)).toBe(`${dest}:meta`);
    for (const k of [metaKey(source), dest, metaKey(dest)]) expect(clusterSlot(k)).toBe(clusterSlot(source));
    expect(await redis.hgetall(metaKey(dest))).toMatchObject({ source, cur: String(T0 - (T0 % 3_600_000)), ctxFrom: String(T0) });
    await expect(
      portable.ensureRule(source, { destKey: `${prefix}:elsewhere`, aggregation: 'sum', bucketMs: 1000 }),
    ).rejects.toThrow(/must share the cluster slot/);
  });

  it('reads made by script are not held by CLIENT PAUSE WRITE (a FAILOVER, a manual cluster failover); writes are', async () => {
    const version = /redis_version:(\d+)/.exec(await redis.info('server'))?.[1];
    if (Number(version) < 7) return; // EVALSHA_RO is Redis 7+: older servers hold these reads too
    const k = `${prefix}:paused`;
    await portable.ensureSeries(k, { retentionMs: 0, labels: {} });
    await portable.addMany(k, [{ timestamp: T0, value: 1 }]);
    const admin = new Redis(server.url);
    const writer = new Redis(server.url);
    try {
      await admin.client('PAUSE', 10_000, 'WRITE');
      let written = false;
      const write = writer.set(`${prefix}:paused-write`, '1').then(() => (written = true));
      // Each script read of the backend answers while the write still waits for the pause to end.
      expect(await portable.latest(k)).toEqual({ timestamp: T0, value: 1 });
      expect(await portable.range({ key: k, from: T0, to: T0 })).toEqual([{ timestamp: T0, value: 1 }]);
      expect((await portable.info(k))?.totalSamples).toBe(1);
      expect(written).toBe(false);
      await admin.client('UNPAUSE');
      await write;
    } finally {
      await admin.client('UNPAUSE').catch(() => undefined);
      admin.disconnect();
      writer.disconnect();
    }
  });

  it('deletes samples beyond retention when adding', async () => {
    const k = `${prefix}:trim`;
    await portable.ensureSeries(k, { retentionMs: 10, labels: {} });
    await portable.addMany(k, [
      { timestamp: T0, value: 1 },
      { timestamp: T0 + 11, value: 2 },
    ]);
    expect(await redis.zcard(k)).toBe(1);
  });
  it('trims a compaction destination to its own retention when it gets a sample, and keeps its rule state current', async () => {
    const source = `${prefix}:dest-trim`;
    const dest = sameSlotKey(source, 'count:1s');
    await portable.ensureSeries(source, { retentionMs: 0, labels: {} });
    await portable.ensureSeries(dest, { retentionMs: 2500, labels: {} });
    await portable.ensureRule(source, { destKey: dest, aggregation: 'count', bucketMs: 1000 });
    const buckets = async () => (await redis.zrange(dest, '0', '-1')).map((m) => Number(m.split(':')[0]) - T0);
    // One sample a call, each in a later 1 s bucket: each call writes the bucket before it.
    for (let i = 0; i <= 5; i++) await portable.addMany(source, [{ timestamp: T0 + 100 + 1000 * i, value: i }]);
    // Newest written bucket T0+4000; retention 2500 keeps T0+1500 and later.
    expect(await buckets()).toEqual([2000, 3000, 4000]);
    expect(await redis.hmget(metaKey(dest), 'cur', 'ctxFrom')).toEqual([String(T0 + 5000), String(T0 + 5000)]);
    // A sample in the open bucket writes nothing to the destination and leaves the state as it is.
    await portable.addMany(source, [{ timestamp: T0 + 5200, value: 9 }]);
    expect(await buckets()).toEqual([2000, 3000, 4000]);
    expect(await redis.hmget(metaKey(dest), 'cur', 'ctxFrom')).toEqual([String(T0 + 5000), String(T0 + 5000)]);
    await portable.addMany(source, [{ timestamp: T0 + 6100, value: 1 }]);
    expect(await buckets()).toEqual([3000, 4000, 5000]);
    expect(await portable.range({ key: dest, from: 0, to: T0 + 100_000 })).toEqual([
      { timestamp: T0 + 3000, value: 1 },
      { timestamp: T0 + 4000, value: 1 },
      { timestamp: T0 + 5000, value: 2 },
    ]);
  });
});

/**
 * A long aggregated range is read in several script calls on the portable backend (SCAN_BUDGET
 * samples each, so Redis serves others in between): the buckets must be those of one scan, bit
 * for bit, also buckets of more samples than the budget (their running state carried from call
 * to call), and ranges of several series that stop and resume in one call.
 */
describe('portable backend: a long range read in several script calls (e2e)', () => {
  let redis: Redis;
  const keys = [`${prefix}:scan:a`, `${prefix}:scan:b`];
  // Irregular: bursts 1 ms apart, gaps, about 3,000 samples per series.
  const samples = (seed: number): Sample[] =>
    Array.from({ length: 3000 }, (_, i) => ({ timestamp: T0 + i * 37 + (i % 7 === 0 ? 5000 : 0) * Math.floor(i / 500) + (i % 3), value: Math.sin(i + seed) * 100 + AWKWARD[i % AWKWARD.length] / 13 }));

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    const writer = new PortableTimeseriesBackend(redis);
    for (const [i, key] of keys.entries()) {
      await writer.ensureSeries(key, { retentionMs: 0, labels: { scan: String(i) } });
      await writer.addMany(key, samples(i));
    }
  });
  afterAll(async () => {
    await deleteKeys(redis, `${prefix}:scan`);
    redis.disconnect();
  });

  it('closes the bucket a call stopped in when the next finds nothing more (the samples gone meanwhile)', async () => {
    const key = `${prefix}:scan:gone`;
    const writer = new PortableTimeseriesBackend(redis);
    await writer.ensureSeries(key, { retentionMs: 1000, labels: { scan: 'gone' } });
    await writer.addMany(key, Array.from({ length: 10 }, (_, i) => ({ timestamp: T0 + i, value: i + 1 })));
    // Each script call: after the first, a sample far ahead trims the rest (retention), as an ingest would.
    let calls = 0;
    const trimming = new Proxy(redis, {
      get: (target, name, receiver) => {
        const value: unknown = Reflect.get(target, name, receiver);
        if (typeof value !== 'function' || typeof name !== 'string' || !name.startsWith('evalsha')) return value;
        return async (...args: unknown[]) => {
          if (calls++ === 1) await writer.addMany(key, [{ timestamp: T0 + 5000, value: 100 }]);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const samples = await new PortableTimeseriesBackend(trimming, 2).range({ key, from: T0, to: T0 + 10, aggregation: { type: 'sum', bucketMs: 1 } });
    // T0 closed in the first call, T0+1 carried into the second, which finds the rest trimmed.
    expect(samples).toEqual([
      { timestamp: T0, value: 1 },
      { timestamp: T0 + 1, value: 2 },
    ]);
  });

  it.each([...EXACT, ...APPROX])('%s: the same buckets with a budget of 40 samples a call as in one call', async (type) => {
    const whole = new PortableTimeseriesBackend(redis, Number.MAX_SAFE_INTEGER); // one call
    // Script calls counted by command (evalsha_ro, or evalsha where it is refused).
    let calls = 0;
    const counted = new Proxy(redis, {
      get: (target, name, receiver) => {
        const value: unknown = Reflect.get(target, name, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (typeof name === 'string' && name.startsWith('evalsha')) calls++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const resumed = new PortableTimeseriesBackend(counted, 40);
    // Buckets of about one sample, of tens, of more than the budget (~1,600 samples), and one
    // bucket for everything: a bucket's state is carried from call to call.
    for (const bucketMs of [10, 1000, 60_000, 86_400_000]) {
      const queries = keys.map((key) => ({ key, from: T0 + 100, to: T0 + 400_000, aggregation: { type, bucketMs } }));
      const expected = await whole.rangeMany(queries);
      expect(expected[0].length).toBeGreaterThan(0);
      calls = 0;
      expect(await resumed.rangeMany(queries)).toEqual(expected);
      expect(calls).toBeGreaterThan(20); // ~6,000 samples, 40 a call
    }
  });
});

/**
 * Only with the RedisTimeSeries module: the portable backend must answer exactly like the
 * native one (outcomes, raw samples, every aggregation bit for bit, info) for the same inserts.
 */
(serverKind === 'native' ? describe : describe.skip)('portable backend parity with native (e2e, module required)', () => {
  let redis: Redis;
  let native: NativeTimeseriesBackend;
  let portable: PortableTimeseriesBackend;
  const keys = { native: `${prefix}:parity:native`, portable: `${prefix}:parity:portable` };
  const outcomes: Record<'native' | 'portable', unknown[]> = { native: [], portable: [] };

  // Awkward doubles at uneven spacing; the second batch repeats and reorders timestamps so that
  // duplicates and retention rejections happen.
  const value = (i: number) => Math.sin(i) * 1000 + AWKWARD[i % AWKWARD.length] / 7;
  const at = (i: number): Sample => ({ timestamp: T0 + i * 137, value: value(i) });
  const batch1 = Array.from({ length: 30 }, (_, i) => at(i));
  const batch2 = Array.from({ length: 50 }, (_, i) => at(10 + ((i * 17) % 50)));

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    native = new NativeTimeseriesBackend(redis);
    portable = new PortableTimeseriesBackend(redis);
    for (const [name, backend] of [['native', native], ['portable', portable]] as const) {
      await backend.ensureSeries(keys[name], { retentionMs: 2500, labels: { parity: 'x' } });
      outcomes[name].push(...(await backend.addMany(keys[name], batch1)), ...(await backend.addMany(keys[name], batch2)));
    }
  });
  afterAll(() => redis.disconnect());

  it('reports the same outcome for every sample', () => {
    expect(outcomes.portable).toEqual(outcomes.native);
    expect(outcomes.native.some((o) => (o as { status: string }).status === 'duplicate')).toBe(true);
    expect(outcomes.native.some((o) => (o as { status: string }).status === 'rejected')).toBe(true);
  });

  it('returns the same raw samples, latest and info', async () => {
    const query = { from: 0, to: T0 + 100_000 };
    expect(await portable.range({ key: keys.portable, ...query })).toEqual(await native.range({ key: keys.native, ...query }));
    expect(await portable.latest(keys.portable)).toEqual(await native.latest(keys.native));
    expect({ ...(await portable.info(keys.portable)), key: '' }).toEqual({ ...(await native.info(keys.native)), key: '' });
  });

  it.each([...EXACT, ...APPROX])('%s gives bit-identical buckets', async (type) => {
    for (const bucketMs of [1000, 7000, 60_000]) {
      for (const from of [0, T0 + 5250]) {
        const query = { from, to: T0 + 100_000, aggregation: { type, bucketMs } };
        const expected = await native.range({ key: keys.native, ...query });
        expect(expected.length).toBeGreaterThan(0);
        expect(await portable.range({ key: keys.portable, ...query })).toEqual(expected);
      }
    }
  });
});

/**
 * Only with the RedisTimeSeries module: compactions kept by the portable add script equal the
 * module's own TS.CREATERULE destinations for the same inserts (in order, late, duplicates).
 */
(serverKind === 'native' ? describe : describe.skip)('portable compaction parity with native (e2e, module required)', () => {
  let redis: Redis;
  const aggregations: Aggregation[] = ['sum', 'count', 'min', 'max', 'first', 'last', 'avg', 'range', 'std.p'];
  const bucketMs = 1000;
  const dests: Record<'native' | 'portable', Record<string, string>> = { native: {}, portable: {} };

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    const backends = { native: new NativeTimeseriesBackend(redis), portable: new PortableTimeseriesBackend(redis) };
    const value = (i: number) => Math.cos(i) * 100 + AWKWARD[i % AWKWARD.length] / 3;
    const inOrder = Array.from({ length: 40 }, (_, i) => ({ timestamp: T0 + i * 173, value: value(i) }));
    const late = [
      { timestamp: T0 + 5, value: 1.25 }, // new sample in a closed bucket
      { timestamp: T0 + 173, value: 9 }, // duplicate (FIRST keeps the old value)
      { timestamp: T0 + 39 * 173 - 1, value: -4 }, // late into the open bucket
      { timestamp: T0 + 9000, value: 2 }, // closes the open bucket
    ];
    for (const [name, backend] of Object.entries(backends) as Array<['native' | 'portable', TimeseriesBackend]>) {
      const source = `${prefix}:cparity:${name}`;
      await backend.ensureSeries(source, { retentionMs: 0, labels: {} });
      for (const aggregation of aggregations) {
        const dest = sameSlotKey(source, aggregation);
        dests[name][aggregation] = dest;
        await backend.ensureSeries(dest, { retentionMs: 0, labels: {} });
        await backend.ensureRule(source, { destKey: dest, aggregation, bucketMs });
      }
      await backend.addMany(source, inOrder.slice(0, 20));
      await backend.addMany(source, inOrder.slice(20));
      await backend.addMany(source, late);
    }
  });
  afterAll(() => redis.disconnect());

  it.each(aggregations)('%s destinations hold the same buckets', async (aggregation) => {
    const expected = await new NativeTimeseriesBackend(redis).range({ key: dests.native[aggregation], from: 0, to: T0 + 100_000 });
    expect(expected.length).toBeGreaterThan(5);
    const actual = await new PortableTimeseriesBackend(redis).range({ key: dests.portable[aggregation], from: 0, to: T0 + 100_000 });
    expect(actual.map((s) => s.timestamp)).toEqual(expected.map((s) => s.timestamp));
    actual.forEach((s, i) => expect(s.value).toBeCloseTo(expected[i].value, 9));
  });
});
