import type { Command } from 'ioredis';
import type { RedisClient } from '../redis/redis.types.js';
import { classifyMaddReplies, NativeTimeseriesBackend } from './native.backend.js';
import { NotATimeSeriesError, RuleConflictError } from './wire.js';

type Args = Array<string | number>;

/** A stand-in for ioredis: records every command and answers from a script of replies. */
class StubRedis {
  readonly calls: Args[] = [];
  readonly transactions: Args[][] = [];
  private readonly replies: Array<(args: Args) => unknown> = [];
  private execReply: Array<[Error | null, unknown]> | null = null;

  /** Queue the next `call` reply; an Error rejects. */
  answer(reply: unknown): this {
    this.replies.push(() => reply);
    return this;
  }

  answerExec(reply: Array<[Error | null, unknown]>): this {
    this.execReply = reply;
    return this;
  }

  async call(...args: Args): Promise<unknown> {
    this.calls.push(args);
    const next = this.replies.shift();
    if (!next) throw new Error(`unexpected call ${args.join(' ')}`);
    const reply = next(args);
    if (reply instanceof Error) throw reply;
    return reply;
  }

  /** What the backend uses (callOnKey): the command's key is declared for cluster routing. */
  sendCommand(command: Command): Promise<unknown> {
    expect(command.getKeys()).toEqual([command.args[0]]);
    this.call(String(command.name), ...(command.args as Args)).then(command.resolve, command.reject);
    return command.promise;
  }

  multi() {
    const queued: Args[] = [];
    this.transactions.push(queued);
    const chain = {
      sendCommand: (command: Command) => {
        expect(command.getKeys()).toEqual([command.args[0]]);
        queued.push([command.name, ...(command.args as Args)]);
        return chain;
      },
      exec: async () => this.execReply,
    };
    return chain;
  }

  asClient(): RedisClient {
    return this as unknown as RedisClient;
  }
}

const replyError = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

describe('NativeTimeseriesBackend', () => {
  it('refuses a client whose RESP3 doubles would be decoded inexactly', () => {
    const client = { options: { replyMapping: 'resp3' } } as unknown as RedisClient;
    expect(() => new NativeTimeseriesBackend(client)).toThrow(/replyMapping/);
  });

  describe('ensureSeries', () => {
    it('sends TS.CREATE with retention, DUPLICATE_POLICY FIRST and labels', async () => {
      const redis = new StubRedis().answer('OK');
      await new NativeTimeseriesBackend(redis.asClient()).ensureSeries('s', {
        retentionMs: 86_400_000,
        labels: { metric: 'price', unit: 'usd' },
      });
      expect(redis.calls).toEqual([
        ['TS.CREATE', 's', 'RETENTION', '86400000', 'DUPLICATE_POLICY', 'FIRST', 'LABELS', 'metric', 'price', 'unit', 'usd'],
      ]);
    });

    it('omits LABELS on TS.CREATE when there are none', async () => {
      const redis = new StubRedis().answer('OK');
      await new NativeTimeseriesBackend(redis.asClient()).ensureSeries('s', { retentionMs: 0, labels: {} });
      expect(redis.calls).toEqual([['TS.CREATE', 's', 'RETENTION', '0', 'DUPLICATE_POLICY', 'FIRST']]);
    });

    it('alters an existing series to the configured retention, policy and labels', async () => {
      const redis = new StubRedis().answer(replyError('ERR TSDB: key already exists')).answer('OK');
      await new NativeTimeseriesBackend(redis.asClient()).ensureSeries('s', { retentionMs: 5, labels: { a: '1' } });
      expect(redis.calls[1]).toEqual(['TS.ALTER', 's', 'RETENTION', '5', 'DUPLICATE_POLICY', 'FIRST', 'LABELS', 'a', '1']);
    });

    it('sends a bare LABELS on TS.ALTER so that removed labels are dropped', async () => {
      const redis = new StubRedis().answer(replyError('TSDB: key already exists')).answer('OK');
      await new NativeTimeseriesBackend(redis.asClient()).ensureSeries('s', { retentionMs: 0, labels: {} });
      expect(redis.calls[1]).toEqual(['TS.ALTER', 's', 'RETENTION', '0', 'DUPLICATE_POLICY', 'FIRST', 'LABELS']);
    });

    it('throws NotATimeSeriesError when the key holds another type', async () => {
      const redis = new StubRedis()
        .answer(replyError('ERR TSDB: key already exists'))
        .answer(replyError('WRONGTYPE Operation against a key holding the wrong kind of value'));
      await expect(
        new NativeTimeseriesBackend(redis.asClient()).ensureSeries('s', { retentionMs: 0, labels: {} }),
      ).rejects.toBeInstanceOf(NotATimeSeriesError);
    });

    it('passes other errors through', async () => {
      const redis = new StubRedis().answer(replyError('NOPERM no'));
      await expect(
        new NativeTimeseriesBackend(redis.asClient()).ensureSeries('s', { retentionMs: 0, labels: {} }),
      ).rejects.toThrow('NOPERM no');
    });

    it('refuses a negative retention before talking to Redis', async () => {
      const redis = new StubRedis();
      await expect(
        new NativeTimeseriesBackend(redis.asClient()).ensureSeries('s', { retentionMs: -1, labels: {} }),
      ).rejects.toThrow(RangeError);
      expect(redis.calls).toEqual([]);
    });
  });

  describe('addMany', () => {
    it('runs TS.RANGE over the batch span and TS.MADD in one MULTI, values in round-trip form', async () => {
      const redis = new StubRedis().answerExec([
        [null, []],
        [null, [3000, 1000, 2000]],
      ]);
      const outcomes = await new NativeTimeseriesBackend(redis.asClient()).addMany('s', [
        { timestamp: 3000, value: 0.1 },
        { timestamp: 1000, value: -6.295081967213113e-2 },
        { timestamp: 2000, value: -0 },
      ]);
      expect(redis.transactions).toEqual([
        [
          ['TS.RANGE', 's', '1000', '3000'],
          ['TS.MADD', 's', '3000', '0.1', 's', '1000', '-0.06295081967213113', 's', '2000', '-0'],
        ],
      ]);
      expect(redis.calls).toEqual([]);
      expect(outcomes).toEqual([{ status: 'stored' }, { status: 'stored' }, { status: 'stored' }]);
    });

    it('classifies stored, duplicate (existing or earlier in the batch) and rejected', async () => {
      const redis = new StubRedis().answerExec([
        [null, [[1000, '1.5']]],
        [null, [1000, 2000, 2000, replyError('ERR TSDB: Timestamp is older than retention')]],
      ]);
      const outcomes = await new NativeTimeseriesBackend(redis.asClient()).addMany('s', [
        { timestamp: 1000, value: 9 },
        { timestamp: 2000, value: 2 },
        { timestamp: 2000, value: 7 },
        { timestamp: 10, value: 1 },
      ]);
      expect(outcomes).toEqual([
        { status: 'duplicate' },
        { status: 'stored' },
        { status: 'duplicate' },
        { status: 'rejected', reason: 'TSDB: Timestamp is older than retention' },
      ]);
    });

    it('rejects every sample of a missing series with the MADD error text', async () => {
      const redis = new StubRedis().answerExec([
        [replyError('ERR TSDB: the key does not exist'), null],
        [null, [replyError('ERR TSDB: the key is not a TSDB key'), replyError('ERR TSDB: the key is not a TSDB key')]],
      ]);
      const outcomes = await new NativeTimeseriesBackend(redis.asClient()).addMany('missing', [
        { timestamp: 1, value: 1 },
        { timestamp: 2, value: 2 },
      ]);
      expect(outcomes).toEqual([
        { status: 'rejected', reason: 'TSDB: the key is not a TSDB key' },
        { status: 'rejected', reason: 'TSDB: the key is not a TSDB key' },
      ]);
    });

    it('answers invalid samples itself, with the module texts, and sends only the rest', async () => {
      const redis = new StubRedis().answerExec([
        [null, []],
        [null, [5]],
      ]);
      const outcomes = await new NativeTimeseriesBackend(redis.asClient()).addMany('s', [
        { timestamp: 1, value: NaN },
        { timestamp: 1.5, value: 1 },
        { timestamp: -1, value: 1 },
        { timestamp: 5, value: 5 },
      ]);
      expect(redis.transactions[0]).toEqual([
        ['TS.RANGE', 's', '5', '5'],
        ['TS.MADD', 's', '5', '5'],
      ]);
      expect(outcomes).toEqual([
        { status: 'rejected', reason: 'TSDB: invalid value' },
        { status: 'rejected', reason: 'TSDB: invalid timestamp' },
        { status: 'rejected', reason: 'TSDB: invalid timestamp, must be a nonnegative integer' },
        { status: 'stored' },
      ]);
    });

    it('sends nothing for an empty batch', async () => {
      const redis = new StubRedis();
      expect(await new NativeTimeseriesBackend(redis.asClient()).addMany('s', [])).toEqual([]);
      expect(redis.transactions).toEqual([]);
    });

    it('throws when TS.MADD itself fails', async () => {
      const redis = new StubRedis().answerExec([
        [null, []],
        [replyError('ERR wrong number of arguments'), null],
      ]);
      await expect(
        new NativeTimeseriesBackend(redis.asClient()).addMany('s', [{ timestamp: 1, value: 1 }]),
      ).rejects.toThrow('wrong number');
    });
  });

  describe('range', () => {
    it('sends TS.RANGE without aggregation', async () => {
      const redis = new StubRedis().answer([
        [1000, '1.5'],
        [2000, '-6.295081967213113E-2'],
      ]);
      const samples = await new NativeTimeseriesBackend(redis.asClient()).range({ key: 's', from: 0, to: 5000 });
      expect(redis.calls).toEqual([['TS.RANGE', 's', '0', '5000']]);
      expect(samples).toEqual([
        { timestamp: 1000, value: 1.5 },
        { timestamp: 2000, value: -0.06295081967213113 },
      ]);
    });

    it('sends AGGREGATION type bucket (no ALIGN, no EMPTY, no BUCKETTIMESTAMP)', async () => {
      const redis = new StubRedis().answer([[0, 3]]);
      const samples = await new NativeTimeseriesBackend(redis.asClient()).range({
        key: 's',
        from: 400,
        to: 5000,
        aggregation: { type: 'std.s', bucketMs: 1000 },
      });
      expect(redis.calls).toEqual([['TS.RANGE', 's', '400', '5000', 'AGGREGATION', 'std.s', '1000']]);
      expect(samples).toEqual([{ timestamp: 0, value: 3 }]);
    });

    it('rangeMany: one TS.RANGE per query, answers in query order, [] for a missing series', async () => {
      const redis = new StubRedis().answer([[0, '6']]).answer(replyError('ERR TSDB: the key does not exist')).answer([[3600000, '2']]);
      const answers = await new NativeTimeseriesBackend(redis.asClient()).rangeMany([
        { key: 's', from: 0, to: 999, aggregation: { type: 'sum', bucketMs: 1000 } },
        { key: 'gone', from: 0, to: 1 },
        { key: 'd', from: 0, to: 7200000 },
      ]);
      expect(redis.calls).toEqual([
        ['TS.RANGE', 's', '0', '999', 'AGGREGATION', 'sum', '1000'],
        ['TS.RANGE', 'gone', '0', '1'],
        ['TS.RANGE', 'd', '0', '7200000'],
      ]);
      expect(answers).toEqual([[{ timestamp: 0, value: 6 }], [], [{ timestamp: 3600000, value: 2 }]]);
    });

    it('rangeMany: the queries of one slot (a raw series and its compactions) in one MULTI, so they read one state', async () => {
      const redis = new StubRedis()
        .answerExec([
          [null, [[3600000, '10']]],
          [null, [[3600000, '4']]],
          [replyError('ERR TSDB: the key does not exist'), null],
        ])
        .answer([[0, '1']]);
      const answers = await new NativeTimeseriesBackend(redis.asClient()).rangeMany([
        { key: '{p}:sum:1h', from: 0, to: 7200000 },
        { key: 'other', from: 0, to: 1 },
        { key: '{p}:count:1h', from: 0, to: 7200000 },
        { key: 'p', from: 7200000, to: 7300000, aggregation: { type: 'sum', bucketMs: 3600000 } },
      ]);
      expect(redis.transactions).toEqual([
        [
          ['TS.RANGE', '{p}:sum:1h', '0', '7200000'],
          ['TS.RANGE', '{p}:count:1h', '0', '7200000'],
          ['TS.RANGE', 'p', '7200000', '7300000', 'AGGREGATION', 'sum', '3600000'],
        ],
      ]);
      expect(redis.calls).toEqual([['TS.RANGE', 'other', '0', '1']]);
      expect(answers).toEqual([[{ timestamp: 3600000, value: 10 }], [{ timestamp: 0, value: 1 }], [{ timestamp: 3600000, value: 4 }], []]);
    });

    it('rangeMany: an error other than a missing series in the MULTI fails the read', async () => {
      const redis = new StubRedis().answerExec([
        [null, []],
        [replyError('WRONGTYPE Operation against a key holding the wrong kind of value'), null],
      ]);
      await expect(
        new NativeTimeseriesBackend(redis.asClient()).rangeMany([
          { key: '{p}:sum:1h', from: 0, to: 1 },
          { key: 'p', from: 0, to: 1 },
        ]),
      ).rejects.toThrow('WRONGTYPE');
    });

    it('returns [] for a missing series and rethrows other errors', async () => {
      const redis = new StubRedis()
        .answer(replyError('ERR TSDB: the key does not exist'))
        .answer(replyError('WRONGTYPE Operation against a key holding the wrong kind of value'));
      const backend = new NativeTimeseriesBackend(redis.asClient());
      expect(await backend.range({ key: 's', from: 0, to: 1 })).toEqual([]);
      await expect(backend.range({ key: 's', from: 0, to: 1 })).rejects.toThrow('WRONGTYPE');
    });

    it('refuses bad bounds and buckets before talking to Redis', async () => {
      const redis = new StubRedis();
      const backend = new NativeTimeseriesBackend(redis.asClient());
      await expect(backend.range({ key: 's', from: -1, to: 1 })).rejects.toThrow(RangeError);
      await expect(backend.range({ key: 's', from: 0, to: 1.5 })).rejects.toThrow(RangeError);
      await expect(
        backend.range({ key: 's', from: 0, to: 1, aggregation: { type: 'avg', bucketMs: 0 } }),
      ).rejects.toThrow(RangeError);
      expect(redis.calls).toEqual([]);
    });
  });

  describe('latest', () => {
    it('sends TS.GET and parses the sample', async () => {
      const redis = new StubRedis().answer([1000, '33885.23']);
      expect(await new NativeTimeseriesBackend(redis.asClient()).latest('s')).toEqual({
        timestamp: 1000,
        value: 33885.23,
      });
      expect(redis.calls).toEqual([['TS.GET', 's']]);
    });

    it('returns null for an empty series and for a missing one', async () => {
      const redis = new StubRedis().answer([]).answer(replyError('ERR TSDB: the key does not exist'));
      const backend = new NativeTimeseriesBackend(redis.asClient());
      expect(await backend.latest('s')).toBeNull();
      expect(await backend.latest('s')).toBeNull();
    });
  });

  describe('info', () => {
    it('sends TS.INFO and maps the reply', async () => {
      const redis = new StubRedis().answer([
        'totalSamples', 2, 'memoryUsage', 1, 'firstTimestamp', 1000, 'lastTimestamp', 2000,
        'retentionTime', 0, 'chunkCount', 1, 'chunkSize', 4096, 'chunkType', 'compressed',
        'duplicatePolicy', 'first', 'labels', [['a', '1']], 'sourceKey', null, 'rules', [],
      ]);
      expect(await new NativeTimeseriesBackend(redis.asClient()).info('s')).toEqual({
        key: 's',
        totalSamples: 2,
        firstTimestamp: 1000,
        lastTimestamp: 2000,
        retentionMs: 0,
        duplicatePolicy: 'first',
        labels: { a: '1' },
        sourceKey: null,
        rules: [],
      });
      expect(redis.calls).toEqual([['TS.INFO', 's']]);
    });

    it('returns null for a missing series', async () => {
      const redis = new StubRedis().answer(replyError('ERR TSDB: the key does not exist'));
      expect(await new NativeTimeseriesBackend(redis.asClient()).info('s')).toBeNull();
    });
  });
});

describe('NativeTimeseriesBackend.ensureRule', () => {
  const rule = { destKey: '{s}:sum:1h', aggregation: 'sum' as const, bucketMs: 3_600_000 };
  const info = (rules: unknown[]) => [
    'totalSamples', 2, 'firstTimestamp', 1000, 'lastTimestamp', 2000, 'retentionTime', 0,
    'duplicatePolicy', 'first', 'labels', [], 'sourceKey', null, 'rules', rules,
  ];

  it('creates the rule in a MULTI with TS.GET, so the newest sample at creation is exact', async () => {
    const redis = new StubRedis().answer(info([])).answerExec([
      [null, [2000, '7.5']],
      [null, 'OK'],
    ]);
    expect(await new NativeTimeseriesBackend(redis.asClient()).ensureRule('s', rule)).toEqual({
      created: true,
      sourceLatestAtCreation: { timestamp: 2000, value: 7.5 },
    });
    expect(redis.calls).toEqual([['TS.INFO', 's']]);
    expect(redis.transactions).toEqual([[
      ['TS.GET', 's'],
      ['TS.CREATERULE', 's', '{s}:sum:1h', 'AGGREGATION', 'sum', '3600000'],
    ]]);
  });

  it('leaves an identical rule alone and refuses a different one into the same destination', async () => {
    const redis = new StubRedis()
      .answer(info([['{s}:sum:1h', 3_600_000, 'SUM', 0]]))
      .answer(info([['{s}:sum:1h', 60_000, 'SUM', 0]]));
    const backend = new NativeTimeseriesBackend(redis.asClient());
    expect(await backend.ensureRule('s', rule)).toEqual({ created: false, sourceLatestAtCreation: null });
    await expect(backend.ensureRule('s', rule)).rejects.toBeInstanceOf(RuleConflictError);
    expect(redis.transactions).toEqual([]);
  });

  it('refuses an existing rule into the destination with an aggregator it does not know, naming it', async () => {
    const redis = new StubRedis().answer(info([['{s}:sum:1h', 3_600_000, 'COUNTNAN', 0]]));
    const err = await new NativeTimeseriesBackend(redis.asClient()).ensureRule('s', rule).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuleConflictError);
    expect((err as Error).message).toContain('exists as countnan 3600000 ms, not sum 3600000 ms');
  });

  it('refuses an existing rule whose buckets are not epoch-aligned (alignTimestamp set by hand)', async () => {
    const redis = new StubRedis().answer(info([['{s}:sum:1h', 3_600_000, 'SUM', 1_800_000]]));
    const err = await new NativeTimeseriesBackend(redis.asClient()).ensureRule('s', rule).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuleConflictError);
    expect((err as Error).message).toContain('sum 3600000 ms aligned to 1800000, not sum 3600000 ms');
    expect(redis.transactions).toEqual([]);
  });

  it('accepts losing a creation race to the same rule, and rethrows other TS.CREATERULE errors', async () => {
    const raced = new StubRedis()
      .answer(info([]))
      .answerExec([[null, []], [replyError('ERR TSDB: the destination key already has a src rule'), null]])
      .answer(info([['{s}:sum:1h', 3_600_000, 'sum']]));
    expect(await new NativeTimeseriesBackend(raced.asClient()).ensureRule('s', rule)).toEqual({ created: false, sourceLatestAtCreation: null });

    const failing = new StubRedis()
      .answer(info([]))
      .answerExec([[null, []], [replyError('ERR TSDB: the key does not exist'), null]])
      .answer(info([]));
    await expect(new NativeTimeseriesBackend(failing.asClient()).ensureRule('s', rule)).rejects.toThrow('the key does not exist');
  });

  it('fails clearly when the source is missing', async () => {
    const redis = new StubRedis().answer(replyError('ERR TSDB: the key does not exist'));
    await expect(new NativeTimeseriesBackend(redis.asClient()).ensureRule('s', rule)).rejects.toThrow(/source series "s" does not exist/);
  });
});

describe('classifyMaddReplies', () => {
  it('does not count a rejected sample as present for a later one at the same timestamp', () => {
    const outcomes = classifyMaddReplies(
      [
        { timestamp: 5, value: 1 },
        { timestamp: 5, value: 2 },
      ],
      [replyError('ERR TSDB: something'), 5],
      new Set(),
    );
    expect(outcomes).toEqual([{ status: 'rejected', reason: 'TSDB: something' }, { status: 'stored' }]);
  });
});
