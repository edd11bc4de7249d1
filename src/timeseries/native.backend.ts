/**
 * TimeseriesBackend on the RedisTimeSeries module (Redis 8 / Redis Stack): the TS.* commands
 * themselves, replies parsed by reply-parser so RESP2 and RESP3 clients give the same numbers.
 */
import { hashTag } from '../redis/key-slot.js';
import { callOnKey, queueOnKey } from '../redis/keyed-command.js';
import { isCluster, type RedisClient } from '../redis/redis.types.js';
import { parseInfo, parseSample, parseSamples } from './reply-parser.js';
import type {
  AddOutcome,
  CompactionRule,
  EnsuredRule,
  RangeQuery,
  Sample,
  SeriesInfo,
  SeriesOptions,
  TimeseriesBackend,
} from './timeseries.types.js';
import {
  assertRule,
  assertRangeQuery,
  RuleConflictError,
  assertSeriesOptions,
  errorMessage,
  errorReason,
  formatValue,
  isKeyMissingError,
  NotATimeSeriesError,
  sampleRejection,
} from './wire.js';

export class NativeTimeseriesBackend implements TimeseriesBackend {
  readonly kind = 'native' as const;

  constructor(private readonly redis: RedisClient) {
    // ioredis' "resp3" reply mapping decodes RESP3 doubles digit by digit, which is not exact
    // (0.1 comes back as 0.10000000000000002); the default "legacy" mapping keeps their text.
    const replyMapping = isCluster(redis) ? redis.options?.redisOptions?.replyMapping : redis.options?.replyMapping;
    if (replyMapping === 'resp3') {
      throw new Error('NativeTimeseriesBackend needs an ioredis client with replyMapping "legacy" for exact doubles');
    }
  }

  async ensureSeries(key: string, options: SeriesOptions): Promise<void> {
    assertSeriesOptions(options);
    const policy = ['RETENTION', String(options.retentionMs), 'DUPLICATE_POLICY', 'FIRST'];
    const labels = Object.entries(options.labels).flat();
    try {
      await callOnKey(this.redis, 'TS.CREATE', key, ...policy, ...(labels.length > 0 ? ['LABELS', ...labels] : []));
      return;
    } catch (err) {
      // TS.CREATE answers "TSDB: key already exists" for any existing key, whatever its type.
      if (!/key already exists/i.test(errorMessage(err))) throw err;
    }
    try {
      // LABELS is always sent: with no pairs it removes every existing label (TS.ALTER docs).
      await callOnKey(this.redis, 'TS.ALTER', key, ...policy, 'LABELS', ...labels);
    } catch (err) {
      if (/WRONGTYPE|not a TSDB key/i.test(errorMessage(err))) {
        throw new NotATimeSeriesError(key, errorReason(err));
      }
      throw err;
    }
  }

  /**
   * MULTI / TS.RANGE / TS.MADD / EXEC. With DUPLICATE_POLICY FIRST, TS.MADD replies with the
   * timestamp for a duplicate as for a new sample, so the TS.RANGE taken in the same transaction
   * tells which timestamps were already there. Samples RedisTimeSeries would refuse while parsing
   * (non-finite value, bad timestamp) are answered here with its error text and not sent.
   */
  async addMany(key: string, samples: Sample[]): Promise<AddOutcome[]> {
    const outcomes: Array<AddOutcome | undefined> = samples.map(sampleRejection);
    const sent = samples.filter((_, i) => outcomes[i] === undefined);
    if (sent.length === 0) return outcomes as AddOutcome[];

    const from = sent.reduce((min, s) => Math.min(min, s.timestamp), Infinity);
    const to = sent.reduce((max, s) => Math.max(max, s.timestamp), -Infinity);
    // TS.MADD key ts value [key ts value …]: every triple names this one key, so the whole
    // transaction stays in the key's cluster slot. (The first key is queueOnKey's argument.)
    const madd = sent.flatMap((s) => [key, String(s.timestamp), formatValue(s.value)]).slice(1);
    const tx = this.redis.multi();
    queueOnKey(tx, 'TS.RANGE', key, String(from), String(to));
    queueOnKey(tx, 'TS.MADD', key, ...madd);
    const results = await tx.exec();
    if (!results || results.length !== 2) throw new Error(`MULTI for ${key} was not executed`);
    const [[rangeErr, rangeReply], [maddErr, maddReply]] = results;
    if (maddErr) throw maddErr;
    // A failed TS.RANGE (missing key, wrong type) means nothing stored: TS.MADD then rejects each sample.
    const present = new Set(rangeErr ? [] : parseSamples(rangeReply).map((s) => s.timestamp));
    if (!Array.isArray(maddReply) || maddReply.length !== sent.length) {
      throw new Error(`Unexpected TS.MADD reply for ${key}`);
    }

    const classified = classifyMaddReplies(sent, maddReply as unknown[], present);
    let next = 0;
    return outcomes.map((o) => o ?? classified[next++]);
  }

  async range(query: RangeQuery): Promise<Sample[]> {
    assertRangeQuery(query);
    try {
      return parseSamples(await callOnKey(this.redis, 'TS.RANGE', query.key, ...rangeArgs(query)));
    } catch (err) {
      // Contract: a series that does not exist has no samples.
      if (isKeyMissingError(err)) return [];
      throw err;
    }
  }

  /**
   * TS.RANGE per query; those of one cluster slot (a raw series and its compactions) in one
   * MULTI, so they read one state of the data, as the portable backend's one script does:
   * history folds avg from a sum and a count compaction, and a write landing between the two
   * reads would pair a sum with another state's count. Slots in parallel.
   */
  async rangeMany(queries: RangeQuery[]): Promise<Sample[][]> {
    queries.forEach(assertRangeQuery);
    const bySlot = new Map<string, number[]>();
    queries.forEach((q, i) => {
      const slot = hashTag(q.key) ?? q.key;
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), i]);
    });
    const results = new Array<Sample[]>(queries.length);
    await Promise.all(
      [...bySlot.values()].map(async (indexes) => {
        if (indexes.length === 1) {
          results[indexes[0]] = await this.range(queries[indexes[0]]);
          return;
        }
        const tx = this.redis.multi();
        for (const i of indexes) queueOnKey(tx, 'TS.RANGE', queries[i].key, ...rangeArgs(queries[i]));
        const replies = await tx.exec();
        if (!replies || replies.length !== indexes.length) throw new Error(`MULTI of ${indexes.length} TS.RANGE was not executed`);
        indexes.forEach((i, j) => {
          const [err, reply] = replies[j];
          if (err && !isKeyMissingError(err)) throw err;
          results[i] = err ? [] : parseSamples(reply);
        });
      }),
    );
    return results;
  }

  async latest(key: string): Promise<Sample | null> {
    try {
      return parseSample(await callOnKey(this.redis, 'TS.GET', key));
    } catch (err) {
      if (isKeyMissingError(err)) return null;
      throw err;
    }
  }

  async info(key: string): Promise<SeriesInfo | null> {
    try {
      return parseInfo(key, await callOnKey(this.redis, 'TS.INFO', key));
    } catch (err) {
      if (isKeyMissingError(err)) return null;
      throw err;
    }
  }

  /**
   * TS.INFO tells whether the rule exists; if not, MULTI / TS.GET / TS.CREATERULE / EXEC reads
   * the source's newest sample in the same atomic step that creates the rule, so the caller
   * knows exactly which buckets the rule has not seen. No alignTimestamp: buckets are
   * epoch-aligned like TS.RANGE's.
   */
  async ensureRule(source: string, rule: CompactionRule): Promise<EnsuredRule> {
    assertRule(source, rule);
    if (await this.hasRule(source, rule)) return { created: false, sourceLatestAtCreation: null };
    const tx = this.redis.multi();
    queueOnKey(tx, 'TS.GET', source);
    queueOnKey(tx, 'TS.CREATERULE', source, rule.destKey, 'AGGREGATION', rule.aggregation, String(rule.bucketMs));
    const results = await tx.exec();
    if (!results || results.length !== 2) throw new Error(`MULTI for rule ${source} → ${rule.destKey} was not executed`);
    const [[getErr, getReply], [createErr]] = results;
    if (createErr) {
      // Another instance created it between our TS.INFO and the MULTI: fine if it is the same rule.
      if (await this.hasRule(source, rule)) return { created: false, sourceLatestAtCreation: null };
      throw createErr;
    }
    if (getErr) throw getErr;
    return { created: true, sourceLatestAtCreation: parseSample(getReply) };
  }

  /**
   * Whether source already compacts into rule.destKey; a different rule into it is a conflict,
   * and so is one whose buckets are not epoch-aligned (created by hand with an alignTimestamp):
   * history reads compactions as epoch-aligned buckets, and would give wrong answers from it.
   */
  private async hasRule(source: string, rule: CompactionRule): Promise<boolean> {
    const info = await this.info(source);
    if (!info) throw new Error(`Cannot create a compaction rule: source series "${source}" does not exist`);
    const existing = info.rules.find((r) => r.destKey === rule.destKey);
    if (!existing) return false;
    if (existing.aggregation !== rule.aggregation || existing.bucketMs !== rule.bucketMs || (existing.alignMs ?? 0) !== 0) {
      throw new RuleConflictError(source, rule, existing);
    }
    return true;
  }
}

/**
 * Outcome of each sample sent in one TS.MADD: an error element is a rejection; a timestamp that
 * existed before the call, or was stored earlier in the same call, is a duplicate (FIRST kept the
 * old value); anything else was stored. `present` is consumed (stored timestamps are added).
 */
export function classifyMaddReplies(sent: Sample[], replies: unknown[], present: Set<number>): AddOutcome[] {
  return sent.map((sample, i): AddOutcome => {
    const reply = replies[i];
    if (reply instanceof Error) return { status: 'rejected', reason: errorReason(reply) };
    if (present.has(sample.timestamp)) return { status: 'duplicate' };
    present.add(sample.timestamp);
    return { status: 'stored' };
  });
}

/** TS.RANGE's arguments after the key. */
function rangeArgs(query: RangeQuery): string[] {
  const args = [String(query.from), String(query.to)];
  if (query.aggregation) args.push('AGGREGATION', query.aggregation.type, String(query.aggregation.bucketMs));
  return args;
}
