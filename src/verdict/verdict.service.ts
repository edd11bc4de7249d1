import { BadRequestException, Inject, Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import { Env } from '../config/env.validation.js';
import { badRequestOnRangeError } from '../common/errors.js';
import { rawSpanProblem, resolveWindow } from '../history/history-query.js';
import { LUA_NOW_MS, LuaScript } from '../redis/lua-script.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { RedisClient } from '../redis/redis.types.js';
import { APP_LABEL } from '../series/series.catalog.js';
import type { SummaryResponseDto } from '../summary/dto/summary-response.dto.js';
import { RawReadGate } from '../timeseries/raw-read-gate.service.js';
import { TimeseriesService } from '../timeseries/timeseries.service.js';
import { VerdictChangedEventDto, VerdictChangeDto, VerdictPointDto, VerdictSeriesQueryDto, VerdictStateDto } from './dto/verdict.dto.js';
import { VerdictEvents } from './verdict.events.js';
import { isVerdict, Verdict, VERDICT_CODE, verdictOfCode, VERDICTS } from './verdict.rule.js';

/** Changes kept for GET /verdict and the dashboard. */
export const MAX_CHANGES = 20;

/**
 * Compare-and-set of the verdict state, the one place a transition is decided (so N instances
 * evaluating the same data agree on one change, and its event is published once).
 * KEYS: state hash, changes list (same slot). ARGV: verdict, at (the summary's as_of, ms),
 * event id, max changes, the change event as JSON without `previous` (kept in the state as
 * `change` and `previous`, with `changed_at` by the Redis clock, so another instance can
 * rebuild the event: see lastChange), the live events' channel, then per possible previous
 * verdict: that verdict, the event's JSON with it. A change PUBLISHes its event here, in the
 * same script: published if and only if made, even when the answer is lost or this process
 * dies right after (publishing from Node afterwards lost both).
 * An evaluation older than the newest one recorded is `stale` (two instances racing must not let
 * the older data win); the same verdict is `same` (the run goes on); no state yet is `first`
 * (nothing changed: no event); otherwise `changed`. With no state yet, `unknown` is not recorded:
 * it is what a start with empty series (a first start, a Redis that lost its data) evaluates
 * until every source has reported once, and recording it made the first real verdict a change,
 * announced to every client and webhook. Returns {outcome, verdict, since, previous}.
 */
const TRANSITION = new LuaScript(`${LUA_NOW_MS}
local cur = redis.call('HMGET', KEYS[1], 'verdict', 'since', 'at')
local at = tonumber(ARGV[2])
if cur[1] and cur[3] and tonumber(cur[3]) > at then return {'stale', cur[1], cur[2], ''} end
if cur[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'at', ARGV[2])
  return {'same', cur[1], cur[2], ''}
end
if not cur[1] then
  if ARGV[1] == 'unknown' then return {'first', ARGV[1], '', ''} end
  redis.call('HSET', KEYS[1], 'verdict', ARGV[1], 'since', ARGV[2], 'at', ARGV[2])
  return {'first', ARGV[1], ARGV[2], ''}
end
redis.call('HSET', KEYS[1], 'verdict', ARGV[1], 'since', ARGV[2], 'at', ARGV[2], 'event', ARGV[3], 'change', ARGV[5], 'previous', cur[1],
  'changed_at', now_ms())
redis.call('LPUSH', KEYS[2], cjson.encode({id = ARGV[3], at = at, previous = cur[1], verdict = ARGV[1]}))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
for i = 7, #ARGV, 2 do
  if ARGV[i] == cur[1] then
    redis.call('PUBLISH', ARGV[6], ARGV[i + 1])
    break
  end
end
return {'changed', ARGV[1], ARGV[2], cur[1]}`);

/**
 * The last change ({change, previous}) if made less than ARGV[1] ms ago, else nil. Aged by the
 * Redis clock, like `changed_at` itself: an instance whose own clock is off would otherwise
 * catch up old news or never catch up at all. KEYS: state hash.
 */
const LAST_CHANGE = new LuaScript(`${LUA_NOW_MS}
local v = redis.call('HMGET', KEYS[1], 'change', 'previous', 'changed_at')
local at = tonumber(v[3])
if not v[1] or not v[2] or not at then return false end
if now_ms() - at >= tonumber(ARGV[1]) then return false end
return {v[1], v[2]}`, true);

type Outcome = 'stale' | 'same' | 'first' | 'changed';

/**
 * The verdict feature: evaluated on the summary recomputed after each ingest run (never per
 * request), stored as a series (both backends), its current run kept in Redis (shared by every
 * instance), the change's live event published by the transition itself, and a VerdictEvents
 * emission (for the webhooks) by the one instance that made it.
 */
@Injectable()
export class VerdictService {
  private readonly logger = new Logger(VerdictService.name);
  private readonly retentionMs: number;
  private readonly maxPoints: number;
  private readonly maxRawSpanMs: number;
  private seriesReady = false;
  /**
   * The change of a transition whose answer never came (a command timeout, a dropped
   * connection): Redis may have made it, and then nobody else will announce it. Checked by the
   * next record.
   */
  private unconfirmed: ChangeTemplate | null = null;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly timeseries: TimeseriesService,
    private readonly events: VerdictEvents,
    private readonly gate: RawReadGate,
    config: ConfigService<Env, true>,
  ) {
    this.retentionMs = config.get('TIMESERIES_RETENTION_MS', { infer: true });
    this.maxPoints = config.get('SERIES_MAX_POINTS', { infer: true });
    this.maxRawSpanMs = config.get('SERIES_MAX_RAW_SPAN_MS', { infer: true });
  }

  /** `verdict_since` for a summary computed on a request: the recorded start when the recorded verdict is this one, else null. */
  async since(verdict: Verdict): Promise<string | null> {
    const [current, since] = await this.redis.hmget(this.keys.verdictState(), 'verdict', 'since');
    return current === verdict ? iso(since) : null;
  }

  /**
   * Records the verdict of a summary computed after an ingest run: a sample in the verdict
   * series, then the compare-and-set; emits VerdictEvents when this call made a change. Returns
   * the `verdict_since` that goes with the summary, and whether the summary was `stale`: older
   * (`as_of`) than one already recorded, by another instance or an earlier run.
   */
  async record(summary: SummaryResponseDto): Promise<{ since: string | null; stale: boolean }> {
    await this.confirmUnconfirmed();
    const at = Date.parse(summary.as_of);
    // The history sample must not hold up (or, failing, prevent) the transition and its event.
    const stored = this.store(at, summary.verdict).catch((err: Error) => this.logger.warn(`could not store the verdict sample: ${err.message}`));
    // Should this call make a change, the new run starts at this summary's as_of.
    const change: ChangeTemplate = { id: randomUUID(), verdict: summary.verdict, since: summary.as_of, summary: { ...summary, verdict_since: summary.as_of } };
    // The event as every instance's live clients get it, for each verdict it may change from.
    const events = VERDICTS.filter((v) => v !== summary.verdict).flatMap((v) => [v, JSON.stringify(changeEvent(change, v))]);
    let reply: [Outcome, string, string, string];
    try {
      reply = (await TRANSITION.run(
        this.redis,
        [this.keys.verdictState(), this.keys.verdictChanges()],
        [summary.verdict, String(at), change.id, String(MAX_CHANGES), JSON.stringify(change), this.keys.events(), ...events],
      )) as [Outcome, string, string, string];
    } catch (err) {
      this.unconfirmed = change;
      await stored;
      throw err;
    }
    await stored;
    const [outcome, current, since, previous] = reply;
    if (outcome === 'stale') return { since: current === summary.verdict ? iso(since) : null, stale: true };
    if (outcome === 'changed' && isVerdict(previous)) {
      this.logger.log(`verdict changed: ${previous} → ${summary.verdict} (as of ${summary.as_of})`);
      await this.events.emit(changeEvent(change, previous));
    }
    // An unknown with nothing recorded has no run yet: no since (as GET /verdict says).
    return { since: since === '' ? null : new Date(Number(since)).toISOString(), stale: false };
  }

  /** Emits the unconfirmed change if Redis made it and it is still the last one (a newer change had its own event). */
  private async confirmUnconfirmed(): Promise<void> {
    const change = this.unconfirmed;
    if (!change) return;
    let event: string | null;
    let previous: string | null;
    try {
      [event, previous] = await this.redis.hmget(this.keys.verdictState(), 'event', 'previous');
    } catch {
      return; // still unknown: the next record looks again
    }
    if (this.unconfirmed === change) this.unconfirmed = null;
    if (event !== change.id || !isVerdict(previous)) return;
    this.logger.log(`verdict changed: ${previous} → ${change.verdict} (as of ${change.since}; its answer from Redis had been lost)`);
    await this.events.emit(changeEvent(change, previous));
  }

  /**
   * The last change, as its event (the same JSON whoever builds it), if it was made less than
   * `maxAgeMs` ago by the Redis clock; else null. For readers that must not miss a change even when the instance
   * that made it died before telling them (the webhooks).
   */
  async lastChange(maxAgeMs: number): Promise<VerdictChangedEventDto | null> {
    const reply = (await LAST_CHANGE.run(this.redis, [this.keys.verdictState()], [String(maxAgeMs)])) as [string, string] | null;
    if (!reply) return null;
    const [change, previous] = reply;
    if (!isVerdict(previous)) return null;
    try {
      return changeEvent(JSON.parse(change) as ChangeTemplate, previous);
    } catch {
      return null;
    }
  }

  /** GET /verdict: the current run and the last changes. */
  async state(): Promise<VerdictStateDto> {
    const [[verdict, since, at], raw] = await Promise.all([
      this.redis.hmget(this.keys.verdictState(), 'verdict', 'since', 'at'),
      this.redis.lrange(this.keys.verdictChanges(), 0, MAX_CHANGES - 1),
    ]);
    const changes = raw.flatMap((text): VerdictChangeDto[] => {
      try {
        const c = JSON.parse(text) as { id: string; at: number; previous: string; verdict: string };
        return isVerdict(c.previous) && isVerdict(c.verdict)
          ? [{ id: c.id, time: new Date(c.at).toISOString(), previous: c.previous, verdict: c.verdict }]
          : [];
      } catch {
        return [];
      }
    });
    return { verdict: isVerdict(verdict) ? verdict : null, since: iso(since), evaluated_as_of: iso(at), changes };
  }

  /**
   * GET /series/verdict: per epoch-aligned bucket, the last verdict evaluated in it (TS.RANGE …
   * AGGREGATION last), oldest first, buckets without an evaluation left out. Same parameters,
   * defaults and SERIES_MAX_POINTS limit as GET /series/{metric}.
   */
  async history(query: VerdictSeriesQueryDto): Promise<VerdictPointDto[]> {
    const key = this.keys.verdictSeries();
    const newest = async () => (await this.timeseries.latest(key))?.timestamp ?? Date.now();
    const { from, to, bucketMs } = await badRequestOnRangeError(resolveWindow(query, newest, this.maxPoints));
    // The verdict series has no compactions: every query reads its raw samples.
    const problem = rawSpanProblem(to - from, this.retentionMs, this.maxRawSpanMs, 'The verdict history', 'use a shorter range');
    if (problem) throw new BadRequestException(problem);
    const samples = await this.gate.run(to - from, () => this.timeseries.range({ key, from, to, aggregation: { type: 'last', bucketMs } }));
    return samples.flatMap((s) => {
      const verdict = verdictOfCode(s.value);
      return verdict ? [{ time: new Date(s.timestamp).toISOString(), verdict }] : [];
    });
  }

  /** One sample per evaluation, at the summary's as_of (DUPLICATE_POLICY FIRST: re-evaluations of the same as_of keep the first). */
  private async store(at: number, verdict: Verdict): Promise<void> {
    const sample = [{ timestamp: at, value: VERDICT_CODE[verdict] }];
    const created = !this.seriesReady && (await this.ensureSeries());
    let report = await this.timeseries.add(this.keys.verdictSeries(), sample);
    if (report.rejected > 0 && !created) {
      // The series may be gone with Redis's data (a restart without persistence, FLUSHALL):
      // create it again and store this evaluation, instead of never recording again.
      await this.ensureSeries();
      report = await this.timeseries.add(this.keys.verdictSeries(), sample);
    }
    if (report.rejected > 0) this.logger.warn(`verdict sample rejected: ${report.errors.join('; ')}`);
  }

  private async ensureSeries(): Promise<true> {
    await this.timeseries.ensureSeries(this.keys.verdictSeries(), { retentionMs: this.retentionMs, labels: { metric: 'verdict', app: APP_LABEL } });
    this.seriesReady = true;
    return true;
  }
}

/** A change event but its `previous` (only the compare-and-set knows it). */
type ChangeTemplate = Omit<VerdictChangedEventDto, 'type' | 'previous'>;

/** The event, its fields always in this order (so its JSON is the same whoever builds it). */
function changeEvent(c: ChangeTemplate, previous: Verdict): VerdictChangedEventDto {
  return { type: 'verdict.changed', id: c.id, previous, verdict: c.verdict, since: c.since, summary: c.summary };
}

function iso(ms: string | null | undefined): string | null {
  const n = ms === null || ms === undefined ? NaN : Number(ms);
  return Number.isFinite(n) ? new Date(n).toISOString() : null;
}
