import { createHash } from 'node:crypto';
import type { RedisClient } from '../redis/redis.types.js';
import { metaKey, PortableTimeseriesBackend } from './portable.backend.js';
import { NotATimeSeriesError, RuleConflictError } from './wire.js';

type Args = Array<string | number>;

type ScriptCommand = 'evalsha' | 'eval' | 'evalsha_ro' | 'eval_ro';

/** Answers EVALSHA / EVAL (and their read-only forms) from a queue; records what was sent. The Lua itself runs in the e2e suite. */
function stub(...replies: unknown[]) {
  const calls: Array<{ command: ScriptCommand; args: Args }> = [];
  const answer = async (command: ScriptCommand, args: Args) => {
    calls.push({ command, args });
    const reply = replies.shift();
    if (reply instanceof Error) throw reply;
    return reply;
  };
  const client = {
    evalsha: (...args: Args) => answer('evalsha', args),
    eval: (...args: Args) => answer('eval', args),
    evalsha_ro: (...args: Args) => answer('evalsha_ro', args),
    eval_ro: (...args: Args) => answer('eval_ro', args),
  };
  return { calls, redis: client as unknown as RedisClient };
}

describe('metaKey', () => {
  it('puts the metadata in the series key hash tag, so both share a cluster slot', () => {
    expect(metaKey('app:price:mean:30s')).toBe('{app:price:mean:30s}:meta');
  });

  it('keeps the hash tag of a key that has one', () => {
    expect(metaKey('{app}:price:mean:30s')).toBe('{app}:price:mean:30s:meta');
  });

  it('refuses keys with braces but no hash tag', () => {
    expect(() => metaKey('app:{}:price')).toThrow(/braces/);
  });

  it('keeps the hash tag of a tagged key (compaction destinations): key:meta', () => {
    expect(metaKey('{app:price:mean:30s}:sum:1h')).toBe('{app:price:mean:30s}:sum:1h:meta');
    expect(metaKey('app:{btc}:price')).toBe('app:{btc}:price:meta');
  });

  it('refuses braces that form no hash tag, and tagged keys that could collide with metadata keys', () => {
    expect(() => metaKey('a}b')).toThrow(/braces/);
    expect(() => metaKey('a{}b')).toThrow(/braces/);
    expect(() => metaKey('{app}')).toThrow(/reserved/);
    expect(() => metaKey('{app}:meta')).toThrow(/reserved/);
    expect(() => metaKey('{app}:x:meta')).toThrow(/reserved/);
  });
});

describe('PortableTimeseriesBackend', () => {
  it('runs scripts by SHA1 and loads them with EVAL on NOSCRIPT, keys declared', async () => {
    const { calls, redis } = stub(new Error('NOSCRIPT No matching script. Please use EVAL.'), ['s', 'd']);
    const outcomes = await new PortableTimeseriesBackend(redis).addMany('k', [
      { timestamp: 1000, value: 0.1 },
      { timestamp: 1000, value: -0 },
    ]);
    expect(outcomes).toEqual([{ status: 'stored' }, { status: 'duplicate' }]);
    expect(calls).toHaveLength(2);
    const [sha, ...rest] = calls[0].args;
    const [source, ...evalRest] = calls[1].args;
    expect(calls[0].command).toBe('evalsha');
    expect(calls[1].command).toBe('eval');
    expect(sha).toBe(createHash('sha1').update(String(source)).digest('hex'));
    expect(rest).toEqual([2, 'k', '{k}:meta', '1000', '0.1', '1000', '-0']);
    expect(evalRest).toEqual(rest);
  });

  it('passes other script errors through', async () => {
    const { redis } = stub(new Error('BUSY Redis is busy running a script'));
    await expect(new PortableTimeseriesBackend(redis).latest('k')).rejects.toThrow('BUSY');
  });

  it('reads (latest, info, range) with the read-only script commands, writes with EVALSHA', async () => {
    const { calls, redis } = stub(null, null, [null], ['s']);
    const backend = new PortableTimeseriesBackend(redis);
    await backend.latest('k');
    await backend.info('k');
    await backend.range({ key: 'k', from: 0, to: 1 });
    await backend.addMany('k', [{ timestamp: 1, value: 1 }]);
    expect(calls.map((c) => c.command)).toEqual(['evalsha_ro', 'evalsha_ro', 'evalsha_ro', 'evalsha']);
  });

  it('maps script replies to outcomes and answers invalid samples without sending them', async () => {
    const { calls, redis } = stub(['TSDB: Timestamp is older than retention', 's']);
    const outcomes = await new PortableTimeseriesBackend(redis).addMany('k', [
      { timestamp: 1, value: Infinity },
      { timestamp: 2, value: 1 },
      { timestamp: -3, value: 1 },
      { timestamp: 4, value: 4 },
    ]);
    expect(calls[0].args.slice(1)).toEqual([2, 'k', '{k}:meta', '2', '1', '4', '4']);
    expect(outcomes).toEqual([
      { status: 'rejected', reason: 'TSDB: invalid value' },
      { status: 'rejected', reason: 'TSDB: Timestamp is older than retention' },
      { status: 'rejected', reason: 'TSDB: invalid timestamp, must be a nonnegative integer' },
      { status: 'stored' },
    ]);
  });

  it('sends range arguments as key index, from, to, bucket, aggregators and parses the reply', async () => {
    const { calls, redis } = stub([
      [
        [
          ['1000', '0.10000000000000001'],
          ['2000', '-3'],
        ],
      ],
    ]);
    const samples = await new PortableTimeseriesBackend(redis).range({
      key: 'k',
      from: 0,
      to: 5000,
      aggregation: { type: 'avg', bucketMs: 1000 },
    });
    expect(calls[0].args.slice(1)).toEqual([2, 'k', '{k}:meta', '5000', '1', '0', '5000', '1000', 'avg', '']);
    expect(samples).toEqual([
      { timestamp: 1000, value: 0.1 },
      { timestamp: 2000, value: -3 },
    ]);
  });

  it('answers several ranges of one slot in one script call, one scan per series, span and bucket', async () => {
    const src = '{app}:price';
    const { calls, redis } = stub([
      [[['0', '6']], [['0', '3']]], // raw sum and count
      [['0:1']], // the compaction's members as stored
      null, // a missing series
    ]);
    const raw = (type: 'sum' | 'count') => ({ key: src, from: 0, to: 999, aggregation: { type, bucketMs: 1000 } });
    const answers = await new PortableTimeseriesBackend(redis).rangeMany([
      raw('sum'),
      { key: `${src}:sum:1h`, from: 1000, to: 5000 },
      raw('count'),
      { key: `${src}:gone`, from: 0, to: 1 },
    ]);
    expect(calls).toHaveLength(1);
    expect(calls[0].args.slice(1)).toEqual([
      6,
      src,
      `${src}:meta`,
      `${src}:sum:1h`,
      `${src}:sum:1h:meta`,
      `${src}:gone`,
      `${src}:gone:meta`,
      '5000', // the scan budget
      ...['1', '0', '999', '1000', 'sum,count', ''],
      ...['3', '1000', '5000', '0', '', ''],
      ...['5', '0', '1', '0', '', ''],
    ]);
    expect(answers).toEqual([[{ timestamp: 0, value: 6 }], [{ timestamp: 0, value: 1 }], [{ timestamp: 0, value: 3 }], []]);
  });

  it("resumes a scan that stopped for the budget where it stopped, with its open bucket's state, until none does", async () => {
    const { calls, redis } = stub(
      [
        [
          [['0', '1']],
          '1500', // one bucket closed, then: resume at 1500 in the open one
          '1000,1,2,4,2,2,2,2', // its state: start, count, sum, sum2, min, max, first, last
        ],
      ],
      [
        [
          [
            ['1000', '2'],
            ['2000', '3'],
          ],
        ],
      ],
    );
    const samples = await new PortableTimeseriesBackend(redis, 2).range({ key: 'k', from: 0, to: 5000, aggregation: { type: 'avg', bucketMs: 1000 } });
    expect(calls.map((c) => c.args.slice(4))).toEqual([
      ['2', '1', '0', '5000', '1000', 'avg', ''],
      ['2', '1', '1500', '5000', '1000', 'avg', '1000,1,2,4,2,2,2,2'],
    ]);
    expect(samples).toEqual([
      { timestamp: 0, value: 1 },
      { timestamp: 1000, value: 2 },
      { timestamp: 2000, value: 3 },
    ]);
  });

  it('sends ranges of different cluster slots in separate script calls', async () => {
    const { calls, redis } = stub([[['1:1']]], [[['2:2']]]);
    const answers = await new PortableTimeseriesBackend(redis).rangeMany([
      { key: 'a', from: 0, to: 9 },
      { key: 'b', from: 0, to: 9 },
    ]);
    expect(calls.map((c) => c.args[2])).toEqual(['a', 'b']);
    expect(answers).toEqual([[{ timestamp: 1, value: 1 }], [{ timestamp: 2, value: 2 }]]);
  });

  it('says twa is not supported, without calling Redis', async () => {
    const { calls, redis } = stub();
    await expect(
      new PortableTimeseriesBackend(redis).range({ key: 'k', from: 0, to: 1, aggregation: { type: 'twa', bucketMs: 10 } }),
    ).rejects.toThrow(/twa.*not supported/);
    expect(calls).toEqual([]);
  });

  it('returns null for a missing series (nil script reply)', async () => {
    const { redis } = stub(null, null, [null]);
    const backend = new PortableTimeseriesBackend(redis);
    expect(await backend.info('k')).toBeNull();
    expect(await backend.latest('k')).toBeNull();
    expect(await backend.range({ key: 'k', from: 0, to: 1 })).toEqual([]);
  });

  it('throws NotATimeSeriesError when the key holds something else', async () => {
    const { calls, redis } = stub('foreign');
    await expect(
      new PortableTimeseriesBackend(redis).ensureSeries('k', { retentionMs: 10, labels: { a: '1' } }),
    ).rejects.toBeInstanceOf(NotATimeSeriesError);
    expect(calls[0].args.slice(1)).toEqual([2, 'k', '{k}:meta', '10', '[["a","1"]]']);
  });
});

describe('PortableTimeseriesBackend.ensureRule', () => {
  const rule = { destKey: '{src}:sum:1h', aggregation: 'sum' as const, bucketMs: 3_600_000 };

  it('sends source, destination and their metadata keys, and reports the newest sample at creation', async () => {
    const { calls, redis } = stub([1, '1000', '2.5']);
    expect(await new PortableTimeseriesBackend(redis).ensureRule('src', rule)).toEqual({
      created: true,
      sourceLatestAtCreation: { timestamp: 1000, value: 2.5 },
    });
    expect(calls[0].args.slice(1)).toEqual([4, 'src', '{src}:meta', '{src}:sum:1h', '{src}:sum:1h:meta', 'sum', '3600000']);
  });

  it('maps "exists" and "conflict" replies', async () => {
    const { redis } = stub([0], [-1, 'max', '60000']);
    const backend = new PortableTimeseriesBackend(redis);
    expect(await backend.ensureRule('src', rule)).toEqual({ created: false, sourceLatestAtCreation: null });
    await expect(backend.ensureRule('src', rule)).rejects.toBeInstanceOf(RuleConflictError);
  });

  it('refuses a destination outside the source slot, twa and equal keys, without calling Redis', async () => {
    const { calls, redis } = stub();
    const backend = new PortableTimeseriesBackend(redis);
    await expect(backend.ensureRule('src', { ...rule, destKey: 'other' })).rejects.toThrow(/cluster slot/);
    await expect(backend.ensureRule('src', { ...rule, aggregation: 'twa' })).rejects.toThrow(/twa/);
    await expect(backend.ensureRule('src', { ...rule, destKey: 'src' })).rejects.toThrow(/distinct/);
    expect(calls).toEqual([]);
  });
});
