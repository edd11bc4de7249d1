/**
 * Differential test of GET /series/:metric against its contract: the answer is what
 * TS.RANGE <raw series> from to AGGREGATION <agg> <bucket> gives on the raw series, whichever
 * compactions (1h, 1d, and 5m with TIMESERIES_5MIN_TIER=true) the service reads it from.
 *
 * Seeded and randomized: irregular samples over a few days (bursts 1 s apart, gaps of minutes to
 * hours, duplicates with other values, late samples into buckets the compactions already closed),
 * written in phases; after each phase random queries (from/to anywhere, on bucket edges, outside
 * the data, from == to; buckets 1m…1d; every aggregation) are compared with the raw range the
 * same TimeseriesService answers. HISTORY_FUZZ_SEED=<n> replays a run (the seed is in the names).
 */
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { SeriesRepository } from '../src/series/series.repository.js';
import { TimeseriesService } from '../src/timeseries/timeseries.service.js';
import { AGGREGATIONS, type Aggregation, type Sample } from '../src/timeseries/timeseries.types.js';
import { bootApp } from './support/app.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';

const SEED = Number(process.env.HISTORY_FUZZ_SEED ?? 20260712);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const MAX_POINTS = 5000; // SERIES_MAX_POINTS' default
const BUCKETS: Record<string, number> = {
  '30s': 30 * SECOND, // no tier fits
  '1m': MINUTE,
  '5m': 5 * MINUTE,
  '15m': 15 * MINUTE,
  '90m': 90 * MINUTE, // the 5 min tier fits, the hourly one does not
  '1h': HOUR,
  '2h': 2 * HOUR,
  '6h': 6 * HOUR,
  '1d': DAY,
  '2d': 2 * DAY,
};
/** What the portable backend answers; twa (native only) is a 400 there, checked apart. */
const PORTABLE_AGGREGATIONS = AGGREGATIONS.filter((a) => a !== 'twa');

/** mulberry32: a small seeded PRNG, [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

/** Irregular price samples (2 decimals, like the feed) over about four days, in time order. */
function samplesOf(rng: Rng): Sample[] {
  const start = Date.UTC(2021, 6, 4) + rng.int(0, DAY - 1);
  const out: Sample[] = [];
  let t = start;
  let price = 34_000;
  while (t < start + 4 * DAY && out.length < 4000) {
    price = Math.max(1, price + (rng.next() - 0.5) * 40);
    out.push({ timestamp: t, value: Math.round(price * 100) / 100 });
    const r = rng.next();
    t +=
      r < 0.45 ? SECOND // a burst
      : r < 0.92 ? rng.int(1, 45 * SECOND)
      : r < 0.99 ? rng.int(2 * MINUTE, 15 * MINUTE)
      : rng.int(HOUR, 3 * HOUR); // a gap: buckets with nothing in them
  }
  return out;
}

/**
 * The samples as they arrive, in phases: in time order by batches, but with about 15 % held back
 * and written later out of order (into buckets the compactions have closed, some into gaps where
 * nothing was stored), and duplicates of
 * stored timestamps with other values (DUPLICATE_POLICY FIRST: the first one written stays),
 * some within one batch.
 */
function phasesOf(rng: Rng, samples: Sample[]): Sample[][] {
  const late: Sample[] = [];
  const onTime: Sample[] = [];
  for (const s of samples) (rng.chance(0.15) ? late : onTime).push(s);
  // And a few late ones in the gaps: buckets the compactions skipped as empty get their first sample.
  for (const [i, s] of samples.slice(1).entries()) {
    const gap = s.timestamp - samples[i].timestamp;
    if (gap > 10 * MINUTE && rng.chance(0.6)) late.push({ timestamp: samples[i].timestamp + rng.int(1, gap - 1), value: s.value });
  }
  const phases: Sample[][] = [];
  const count = Number(process.env.HISTORY_FUZZ_PHASES ?? 5);
  const cuts = Array.from({ length: count }, (_, i) => Math.floor(((i + 1) / count) ** 0.7 * onTime.length));
  let done = 0;
  const written: Sample[] = [];
  for (const cut of cuts) {
    const batch = onTime.slice(done, cut);
    done = cut;
    const newest = batch.at(-1)!.timestamp;
    // The held-back samples older than this batch's newest: late by the time they arrive.
    const due = late.filter((s) => s.timestamp < newest && rng.chance(0.7));
    for (const s of due) late.splice(late.indexOf(s), 1);
    const dups = [...written, ...batch]
      .filter(() => rng.chance(0.02))
      .map((s) => ({ timestamp: s.timestamp, value: Math.round((s.value + rng.int(-500, 500)) * 100) / 100 }));
    // On-time samples first (sometimes in one shuffled batch), then the late ones and the duplicates shuffled.
    phases.push([...(rng.chance(0.3) ? rng.shuffle([...batch]) : batch), ...rng.shuffle([...due, ...dups])]);
    written.push(...batch, ...due);
  }
  phases.push(rng.shuffle(late)); // whatever is still held back
  return phases;
}

/** A time of interest for a query: anywhere, on a bucket or tier edge (or 1 ms off), at a sample, outside the data. */
function timeOf(rng: Rng, samples: Sample[], bucketMs: number): number {
  const first = samples[0].timestamp;
  const last = samples.at(-1)!.timestamp;
  const anywhere = () => rng.int(first - 2 * HOUR, last + 2 * HOUR);
  const edge = (step: number) => Math.floor(anywhere() / step) * step + rng.pick([0, 0, 0, -1, 1]);
  switch (rng.int(0, 7)) {
    case 0:
    case 1:
      return anywhere();
    case 2:
      return edge(bucketMs);
    case 3:
      return edge(rng.pick([5 * MINUTE, HOUR, DAY]));
    case 4:
      return rng.pick(samples).timestamp + rng.pick([0, 0, -1, 1]);
    case 5:
      return rng.pick([first, last, first - 1, last + 1, first - rng.int(1, DAY), last + rng.int(1, DAY)]);
    default:
      return rng.int(first, last);
  }
}

interface Query {
  from: number;
  to: number;
  bucket: string;
  aggregation: Aggregation;
}

function queryOf(rng: Rng, samples: Sample[]): Query {
  const bucket = rng.pick(Object.keys(BUCKETS));
  const bucketMs = BUCKETS[bucket];
  const aggregation = rng.pick(PORTABLE_AGGREGATIONS);
  let from = Math.max(0, timeOf(rng, samples, bucketMs));
  let to = rng.chance(0.05) ? from : Math.max(0, timeOf(rng, samples, bucketMs));
  if (from > to) [from, to] = [to, from];
  // Within SERIES_MAX_POINTS (more is a 400, tested elsewhere).
  if (Math.floor(to / bucketMs) - Math.floor(from / bucketMs) + 1 > MAX_POINTS) to = from + rng.int(1, MAX_POINTS - 1) * bucketMs - 1;
  return { from, to, bucket, aggregation };
}

/** A time as the query gives it: epoch ms, or ISO-8601 with milliseconds. */
const text = (rng: Rng, t: number) => (rng.chance(0.5) ? String(t) : new Date(t).toISOString());
const iso = (t: number) => new Date(t).toISOString();
const describeQuery = (q: Query) => `from=${q.from} (${iso(q.from)}) to=${q.to} (${iso(q.to)}) bucket=${q.bucket} aggregation=${q.aggregation}`;

/**
 * The tolerance test/history.e2e-spec.ts applies, and docs/history.md states: bit-equal, except
 * sum and avg of a bucket folded from several compacted buckets (sums of sums round differently
 * from one running sum), within a relative 1e-12. A bucket folded from partial sums is one of a
 * bucket larger than the finest tier the answer read (X-Series-Source other than raw).
 */
function mismatch(got: Array<{ time: string; value: number }>, floor: Sample[], q: Query, source: string, fiveMinuteTier: boolean): string | null {
  const wanted = floor.map((s) => ({ time: iso(s.timestamp), value: s.value }));
  if (got.length !== wanted.length || got.some((p, i) => p.time !== wanted[i].time)) {
    return `buckets differ:\n  got    ${JSON.stringify(got)}\n  wanted ${JSON.stringify(wanted)}`;
  }
  const bucketMs = BUCKETS[q.bucket];
  const folded = source !== 'raw' && (q.aggregation === 'sum' || q.aggregation === 'avg') && !(bucketMs === HOUR || (fiveMinuteTier && bucketMs === 5 * MINUTE));
  for (const [i, p] of got.entries()) {
    const w = wanted[i].value;
    const ok = folded ? Math.abs(p.value - w) <= 1e-12 * Math.abs(w) + 1e-15 : p.value === w;
    if (!ok) return `${p.time}: got ${p.value}, wanted ${w} (${folded ? 'relative 1e-12' : 'bit-equal'})`;
  }
  return null;
}

const FIVE_MINUTE_TIER = { TIMESERIES_5MIN_TIER: 'true' };

describe.each([
  ['default tiers (1h, 1d)', {}, undefined],
  // Small TS.MADD chunks too: more add calls, so more buckets open across calls.
  ['TIMESERIES_5MIN_TIER=true (1h, 1d, 5m), TIMESERIES_MADD_CHUNK=97', { ...FIVE_MINUTE_TIER, TIMESERIES_MADD_CHUNK: '97' }, undefined],
  // A restart that turns the 5 min tier on over stored data: its compactions are complete only
  // from the bucket after the newest sample then (complete_from), older 5 min buckets read raw.
  ['default tiers, then restarted with TIMESERIES_5MIN_TIER=true after two phases', {}, 2],
] as const)(`history: GET /series/price is TS.RANGE … AGGREGATION on the raw series (seed ${SEED}), %s`, (_name, env, upgradeAt) => {
  let fiveMinuteTier = 'TIMESERIES_5MIN_TIER' in env;
  const prefix = uniquePrefix('history-diff');
  let redis: Redis;
  let app: NestFastifyApplication;
  const rng = new Rng(SEED);
  const samples = samplesOf(rng);
  const phases = phasesOf(rng, samples);
  const QUERIES_PER_PHASE = Number(process.env.HISTORY_FUZZ_QUERIES ?? 24);

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    // One price series (the v1 feed's), as in bench/run.mjs; nothing is fetched.
    app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/unused', ...env });
  });

  afterAll(async () => {
    await app?.close();
    if (redis) {
      await deleteKeys(redis, prefix);
      await redis.quit();
    }
  });

  it(`answers ${phases.length} × (${QUERIES_PER_PHASE} random + 16 whole-span) queries as the raw series does, samples written in phases (seed ${SEED})`, async () => {
    let timeseries = app.get(TimeseriesService);
    const raw = app.get(SeriesRepository).defs('price');
    expect(raw).toHaveLength(1);
    const key = raw[0].key;
    const sources = new Map<string, number>();
    const failures: string[] = [];
    let duplicates = 0;
    let queries = 0;
    let written: Sample[] = [];
    /** Random queries, and a few over all the data (every stored bucket, wherever a compaction's coverage starts). */
    const round = async (label: string, random: number) => {
      const whole = (['5m', '15m', '1h', '1d'] as const).flatMap((bucket) =>
        (['count', 'sum', 'first', 'last'] as const).map((aggregation) => ({
          from: written[0].timestamp - rng.int(0, DAY),
          to: written.at(-1)!.timestamp + rng.int(0, HOUR),
          bucket,
          aggregation,
        })),
      );
      for (let i = 0; i < random + whole.length; i++) {
        const q = i < random ? queryOf(rng, written) : whole[i - random];
        const url = `/series/price?from=${text(rng, q.from)}&to=${text(rng, q.to)}&bucket=${q.bucket}&aggregation=${q.aggregation}`;
        const res = await app.inject({ method: 'GET', url });
        const floor = await timeseries.range({ key, from: q.from, to: q.to, aggregation: { type: q.aggregation, bucketMs: BUCKETS[q.bucket] } });
        const source = String(res.headers['x-series-source']);
        sources.set(source, (sources.get(source) ?? 0) + 1);
        queries++;
        const problem = res.statusCode !== 200 ? `status ${res.statusCode}: ${res.body}` : mismatch(res.json(), floor, q, source, fiveMinuteTier);
        if (problem) failures.push(`seed ${SEED}, ${label}, query ${i}: GET ${url}\n  ${describeQuery(q)}, X-Series-Source ${source}\n  ${problem}`);
      }
    };
    for (const [p, batch] of phases.entries()) {
      if (p === upgradeAt) {
        await app.close();
        app = await bootApp({ REDIS_KEY_PREFIX: prefix, SENTIMENT_API_URL: 'http://127.0.0.1:9/unused', ...FIVE_MINUTE_TIER });
        fiveMinuteTier = true;
        timeseries = app.get(TimeseriesService);
        // As the first polls after a restart do: the newest samples again (duplicates), then new
        // ones minutes later (the restart took a while; the phase's samples before them are late).
        const newest = written.at(-1)!;
        const resumed = [1, 2].map((k) => ({ timestamp: newest.timestamp + k * rng.int(5 * MINUTE, 20 * MINUTE), value: newest.value + k }));
        expect((await app.get(SeriesRepository).add(raw[0], [...written.slice(-3), resumed[0]])).stored).toBe(1);
        expect((await app.get(SeriesRepository).add(raw[0], [resumed[1]])).stored).toBe(1);
        written.push(...resumed);
        await round(`restarted before phase ${p}`, 0);
      }
      const report = await app.get(SeriesRepository).add(raw[0], batch); // as ingest writes
      expect(report.rejected).toBe(0);
      duplicates += report.duplicates;
      written = [...written, ...batch].sort((a, b) => a.timestamp - b.timestamp);
      await round(`phase ${p}`, QUERIES_PER_PHASE);
    }
    // twa needs the RedisTimeSeries module: a 400 on the portable backend, the raw answer on native.
    const twa = await app.inject({ method: 'GET', url: `/series/price?from=${samples[0].timestamp}&to=${samples.at(-1)!.timestamp}&bucket=1h&aggregation=twa` });
    expect(twa.statusCode).toBe(timeseries.kind === 'portable' ? 400 : 200);

    if (process.env.HISTORY_FUZZ_VERBOSE) console.log(JSON.stringify({ seed: SEED, queries, samples: samples.length, written: written.length, duplicates, failures: failures.length, sources: Object.fromEntries(sources) }));
    expect(failures.slice(0, 5)).toEqual([]);
    // The phases did what they are for: duplicates refused, and the answers came through compactions.
    expect(duplicates).toBeGreaterThan(0);
    const via = (tier: string) => [...sources.keys()].some((s) => s.split('+').includes(tier));
    expect(via('1h') && via('1d') && via('raw')).toBe(true);
    expect(via('5m')).toBe(fiveMinuteTier);
    if (upgradeAt !== undefined) {
      const mark = (await timeseries.info(`{${key}}:count:5m`))?.labels.complete_from;
      expect(Number(mark)).toBeGreaterThan(samples[0].timestamp);
    }
  });
});
