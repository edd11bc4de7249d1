import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { countFromZero, INGEST_OUTCOMES, IngestOutcome, MetricsService } from '../metrics/metrics.service.js';
import { withoutPriceJumps } from './price-jumps.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { isRedisUnavailableError, RedisNotConnectedError, RedisStalledError } from '../redis/redis-errors.js';
import { isRedisStalled } from '../redis/redis-stall.js';
import { RedisClient } from '../redis/redis.types.js';
import { DAY_MS, HOUR_MS, SeriesDef } from '../series/series.catalog.js';
import { PendingBackfill, PendingHourlyBackfill, SeriesRepository } from '../series/series.repository.js';
import { PayloadError, SourceError, TransientUpstreamError, UpstreamPausedError } from '../sources/source.errors.js';
import { assertMostlyValid } from '../sources/records.js';
import { SourceRegistry } from '../sources/source.registry.js';
import { SourceBatch, SourceId, SourceProvider } from '../sources/source.types.js';
import { AddReport } from '../timeseries/timeseries.service.js';
import { Sample } from '../timeseries/timeseries.types.js';
import { BackfillReportDto, IngestReportDto, SeriesCountsByMetricDto, SourceOutcomeDto, SourceReportDto } from './dto/ingest-report.dto.js';
import { IngestEvents } from './ingest.events.js';

export interface IngestOptions {
  /** Re-send everything the upstream serves, not only what is newer than the stored data. */
  full?: boolean;
  /** Retry a failed backfill now, not only once its spaced-out retry is due (an operator's POST /refresh). */
  retryNow?: boolean;
}

/** Every source of a POST /refresh failed; the message lists each one's reason. */
export class AllSourcesFailedError extends Error {
  override readonly name = 'AllSourcesFailedError';
}

interface Window {
  from: number;
  to: number;
}

/** A first backfill's hourly part: hours from..to, all before `until`, where its 1-minute part starts. */
interface HourlyWindow extends Window {
  until: number;
}

/** The backfills that failed before and are to be retried (kept in Redis), as read at a run's start. */
interface PendingBackfills {
  /** The 1-minute backfill to retry, or null. */
  from: PendingBackfill | null;
  hourly: PendingHourlyBackfill | null;
}

/**
 * Longest pause an upstream's Retry-After imposes on its source: beyond it, a typo'd or hostile
 * header (up to 31 years) would silence the source until someone deletes the key.
 */
export const MAX_UPSTREAM_PAUSE_MS = DAY_MS;
/** Longest wait between two tries of a failing backfill (see retryAt). */
const MAX_BACKFILL_RETRY_DELAY_MS = 3_600_000;

/** The span a first backfill of a price venue fetches at 1-minute resolution; older hours are hourly. */
export const FINE_SPAN_MS = DAY_MS;

/** A backfill's outcome: its samples, or why not and whether to retry it. */
interface Backfill {
  dto: BackfillReportDto;
  batch: SourceBatch | null;
  retry: boolean;
}

/**
 * Ingest, one source at a time: fetch (poll, and first a backfill when the source's series are
 * empty or have a gap) → validate (the provider) → store with TS.MADD (DUPLICATE_POLICY FIRST,
 * so re-sending is harmless) → emit one event that readers subscribe to. Runs of one source never
 * overlap in one process: a call during a run waits for that run and gets its report. A failing
 * source never stops another.
 */
@Injectable()
export class SentimentIngestService implements OnModuleInit {
  private readonly logger = new Logger(SentimentIngestService.name);
  private readonly running = new Map<SourceId, Promise<SourceReportDto>>();
  private readonly reachLogged = new Set<SourceId>();
  private readonly aheadLogged = new Set<SourceId>();
  /** Sources with a successful run in this process (their last-success gauge is this process's). */
  private readonly succeeded = new Set<SourceId>();
  private readonly backfillMs: number;
  private readonly tickIntervalMs: number;
  private readonly maxAheadMs: number;
  private readonly maxJumpPct: number;
  private readonly priceStaleMs: number;

  constructor(
    private readonly registry: SourceRegistry,
    private readonly series: SeriesRepository,
    private readonly events: IngestEvents,
    private readonly metrics: MetricsService,
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    config: ConfigService<Env, true>,
  ) {
    this.backfillMs = config.get('BACKFILL_HOURS', { infer: true }) * 3_600_000;
    this.tickIntervalMs = config.get('INGEST_INTERVAL_MS', { infer: true });
    this.maxAheadMs = config.get('INGEST_MAX_AHEAD_MS', { infer: true });
    this.maxJumpPct = config.get('PRICE_MAX_JUMP_PCT', { infer: true });
    this.priceStaleMs = config.get('PRICE_STALE_AFTER_MS', { infer: true });
  }

  /**
   * Each source's series in the metrics from the start: its runs by outcome at 0 (countFromZero),
   * its last success as stored by any instance (0 when none), unless a run of this process set it
   * first; left unset when Redis cannot say. Without this, a source failing since the process
   * started had no last-success series, and the stale-source alert could not fire.
   */
  onModuleInit(): void {
    countFromZero(this.metrics.sourceRuns, this.sources.flatMap(({ id }) => INGEST_OUTCOMES.map((outcome) => ({ source: id, outcome }))));
    countFromZero(this.metrics.invalidRecords, this.sources.map(({ id }) => ({ source: id })));
    countFromZero(
      this.metrics.samples,
      this.sources.flatMap(({ id, metrics }) =>
        metrics.flatMap(({ metric }) => (['stored', 'duplicate', 'rejected'] as const).map((outcome) => ({ source: id, series: metric, outcome }))),
      ),
    );
    for (const { id } of this.sources) {
      this.series.lastSuccess(id).then(
        (at) => {
          if (!this.succeeded.has(id)) this.metrics.sourceLastSuccess.set({ source: id }, at === null ? 0 : Math.floor(at / 1000));
        },
        () => undefined,
      );
    }
  }

  /** The sources this deployment reads (each once, whatever it feeds). */
  get sources(): SourceProvider[] {
    return this.registry.active();
  }

  /** Runs in progress (shutdown waits for them). */
  get inFlight(): Promise<unknown> | null {
    return this.running.size === 0 ? null : Promise.allSettled([...this.running.values()]);
  }

  /** POST /refresh: every source at once. Fails only when every source failed. */
  async runAll(options: IngestOptions = {}): Promise<IngestReportDto> {
    const started = Date.now();
    const sources = this.sources;
    const results = await Promise.allSettled(sources.map((p) => this.run(p.id, options)));
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    if (failures.length === results.length) {
      // One source: its own error, as before. Several: a bug first (a 500), then Redis (a 503),
      // else every upstream failed (a 502 naming each).
      if (failures.length === 1) throw failures[0];
      const bug = failures.find((e) => !(e instanceof SourceError) && !isRedisUnavailableError(e));
      if (bug) throw bug;
      const redisDown = failures.find((e) => !(e instanceof SourceError));
      if (redisDown) throw redisDown;
      throw new AllSourcesFailedError(failures.map((e, i) => `${sources[i].id}: ${e.message}`).join('; '));
    }
    const outcomes: SourceOutcomeDto[] = results.map((r, i) =>
      r.status === 'fulfilled'
        ? { source: sources[i].id, ok: true, error: null, report: r.value }
        : { source: sources[i].id, ok: false, error: publicReason(r.reason), report: null },
    );
    return combine(started, outcomes);
  }

  /** One source's run (the scheduler's tick). A plain run joins one in progress; a full run waits for it, then runs. */
  async run(source: SourceId, options: IngestOptions = {}): Promise<SourceReportDto> {
    const current = this.running.get(source);
    if (current && !options.full) return current;
    while (this.running.has(source)) await this.running.get(source)?.catch(() => undefined);
    const provider = this.sources.find((p) => p.id === source);
    if (!provider) throw new Error(`Source ${source} is not configured`);
    const run = this.execute(provider, options).finally(() => this.running.delete(source));
    this.running.set(source, run);
    return run;
  }

  private async execute(provider: SourceProvider, options: IngestOptions): Promise<SourceReportDto> {
    const started = Date.now();
    const source = provider.id;
    try {
      // No point calling the upstream for data we cannot store; the next run catches up.
      if (this.redis.status !== 'ready') throw new RedisNotConnectedError(this.redis.status);
      if (isRedisStalled(this.redis)) throw new RedisStalledError();
      const defs = this.series.ofSource(source);
      // Read together (one round trip on every poll, not three): whether the upstream asked, in an
      // earlier run of any instance, to be left alone until then, what is stored, and which
      // backfills failed before.
      const [notBefore, before, pending] = await Promise.all([
        this.series.upstreamNotBefore(source),
        Promise.all(defs.map((d) => this.series.latest(d))),
        this.pendingBackfills(provider, defs),
      ]);
      if (notBefore !== null) throw new UpstreamPausedError(notBefore);
      this.warnIfAhead(source, defs, before, started);
      // No data: the first run, or Redis lost the series (restart without persistence, failover,
      // FLUSHALL). Re-create them and their rules, or every sample would be rejected until restart.
      if (before.some((s) => s === null)) await this.series.ensureStorage();
      // Newest timestamp present in EVERY series of the source: if a run stored one and not the
      // other, the next run re-sends from the older one (harmless under DUPLICATE_POLICY FIRST).
      const common = before.some((s) => s === null) ? null : Math.min(...before.map((s) => (s as Sample).timestamp));
      const window = this.backfillWindow(provider, defs, common, started, pending, options.retryNow);
      const hourlyWindow = this.hourlyWindow(provider, defs, common, started, pending, options.retryNow);
      // Fetch and validate first: a bad upstream fails the run before anything is written.
      const batch = this.withoutPriceJumps(source, defs, before, this.withoutFuture(source, await provider.poll({ since: options.full ? null : common })));
      const hourly = hourlyWindow ? await this.fetchBackfill(provider, hourlyWindow, true) : null;
      const backfill = window ? await this.fetchBackfill(provider, window) : null;
      // Oldest first: the hours, then the minutes, then the poll (in order for the rules).
      const hourlyStored = hourly?.batch ? await this.storeHourly(defs, hourly.batch, hourlyWindow!.until) : {};
      const backfilled = backfill?.batch ? await this.store(defs, backfill.batch) : {};
      const stored = await this.store(defs, batch);
      if (hourly) await this.settleHourly(provider, hourly, hourlyWindow!, hourlyStored, pending.hourly, started);
      if (backfill) await this.settleBackfill(provider, backfill, window!, backfilled, pending.from, started);
      const report = this.report(source, started, defs, before, batch, stored, backfill, backfilled, hourly, hourlyStored);
      const at = Date.now();
      await this.series.recordSuccess(source, at);
      this.countSuccess(source, at, report, defs);
      this.logger.log(
        `ingest ok: source=${source} fetched=${report.fetched} invalid=${report.invalid} skipped=${report.skipped} stored=${report.stored} duplicates=${report.duplicates} rejected=${report.rejected} in ${report.durationMs} ms`,
      );
      if (report.invalid) this.logger.warn(`${source}: skipped ${report.invalid} invalid record(s): ${report.invalidReasons.join('; ')}`);
      const rejected = [...Object.values(stored), ...Object.values(backfilled)].flatMap((r) => r.errors);
      for (const err of new Set(rejected)) this.logger.warn(`${source}: samples rejected by Redis: ${err}`);
      await this.events.emit({ source, report });
      return report;
    } catch (err) {
      await this.pauseIfAsked(source, err);
      const outcome = outcomeOf(err);
      this.metrics.ingestRuns.inc({ outcome });
      this.metrics.sourceRuns.inc({ source, outcome });
      if (err instanceof UpstreamPausedError) this.logger.warn(`${source}: ${err.message}`);
      else this.logger.error(`ingest failed (${outcome}): source=${source} after ${Date.now() - started} ms: ${(err as Error).message}`);
      // A series key of the wrong kind: on plain Redis, a series that lost half its keys
      // (evicted, deleted by hand). ensureStorage rebuilds it, so the next run goes through;
      // a key that is really someone else's is left alone (and logged).
      if (err instanceof Error && err.message.startsWith('WRONGTYPE')) {
        await this.series.ensureStorage().catch((e: unknown) => this.logger.error(`series not repaired: ${(e as Error).message}`));
      }
      throw err;
    }
  }

  /**
   * A failure carrying a Retry-After (the HTTP client gave up before it was over: longer than
   * UPSTREAM_RETRY_AFTER_MAX_MS, or the retries ran out): no call to that upstream, by any
   * instance, scheduled or POST /refresh, until then (at most MAX_UPSTREAM_PAUSE_MS). Calling
   * again every tick is what gets an IP banned (Bitstamp). Said in the error, so in the report.
   */
  private async pauseIfAsked(source: SourceId, err: unknown): Promise<void> {
    if (!(err instanceof TransientUpstreamError) || err.retryAfterMs === undefined || err.retryAfterMs <= 0) return;
    const until = Date.now() + Math.min(err.retryAfterMs, MAX_UPSTREAM_PAUSE_MS);
    try {
      await this.series.setUpstreamNotBefore(source, until);
    } catch (redisErr) {
      this.logger.warn(`${source}: could not remember the upstream's Retry-After: ${(redisErr as Error).message}`);
      return;
    }
    const at = new Date(until).toISOString();
    err.message = `${err.message}; no call before ${at}`;
    this.logger.warn(`${source}: upstream asked to wait until ${at}; its runs are skipped until then`);
  }

  /**
   * The history to fetch before this run's poll, or null. A backfill that failed before (kept in
   * Redis, so a restart or another instance taking the next tick retries it too), else one when
   * the source's series are empty (first start, or Redis lost the data) or have a gap (the
   * service was down): the last BACKFILL_HOURS, as far as the provider reaches, so the summary
   * and the dashboard mean something at once. A daily source gets whole days, from the day before
   * the window, so the level in effect at the window's start is known.
   */
  backfillWindow(provider: SourceProvider, defs: SeriesDef[], newest: number | null, now: number, pending: PendingBackfills, retryNow = false): Window | null {
    if (!provider.backfill || this.backfillMs === 0) return null;
    // A retry not due yet (see retryAt): nothing this run, not even a gap's backfill.
    if (pending.from !== null && !retryNow && now < pending.from.retryAt) return null;
    const pendingFrom = pending.from?.from ?? null;
    // A first backfill longer than a day: the minutes of the last 24 h only, the rest hourly.
    if (newest === null && pendingFrom === null && this.splitsHourly(provider, defs)) {
      return { from: fineStart(now, provider.backfillReachMs), to: now };
    }
    const daily = defs.every((d) => d.cadence === 'daily');
    let earliest = now - this.backfillMs;
    if (daily) earliest = earliest - (earliest % DAY_MS) - DAY_MS;
    const reach = provider.backfillReachMs;
    if (reach !== undefined && now - earliest > reach) {
      if (!this.reachLogged.has(provider.id)) {
        this.reachLogged.add(provider.id);
        this.logger.warn(`${provider.id}: history reaches back only ${Math.round(reach / 3_600_000)} h; backfilling that much`);
      }
      earliest = now - reach;
    }
    let from: number;
    if (pendingFrom !== null) {
      // Never more than a fresh backfill would ask for, however long the retries have failed.
      from = Math.max(pendingFrom, earliest);
    } else {
      // A gap: more than a few missed polls (tick), or a missing day (daily).
      const gapMs = daily ? 2 * DAY_MS : Math.max(3 * this.tickIntervalMs, 5 * 60_000);
      if (newest !== null && now - newest <= gapMs) return null;
      from = newest === null ? earliest : Math.max(earliest, newest + 1);
    }
    return from < now ? { from, to: now } : null;
  }

  /**
   * The hourly part of a first backfill, or null: when the series are empty and BACKFILL_HOURS
   * reaches past the last 24 h (which backfillWindow fetches by the minute), the hours from the
   * window's start (as far as the provider reaches) up to where the minutes start; or one that
   * failed before, kept in Redis with its boundary, so a retry lands exactly where it would have.
   */
  hourlyWindow(provider: SourceProvider, defs: SeriesDef[], newest: number | null, now: number, pending: PendingBackfills, retryNow = false): HourlyWindow | null {
    if (!this.splitsHourly(provider, defs)) return null;
    const earliest = Math.max(now - this.backfillMs, now - (provider.hourlyReachMs ?? Infinity));
    let from: number;
    let until: number;
    if (pending.hourly !== null) {
      if (!retryNow && now < pending.hourly.retryAt) return null;
      ({ from, until } = pending.hourly);
      from = Math.max(from, earliest);
    } else if (newest === null && pending.from === null) {
      from = earliest;
      until = fineStart(now, provider.backfillReachMs);
    } else {
      return null;
    }
    return from < until ? { from, to: until - 1, until } : null;
  }

  /** The source's backfills to retry, as backfillWindow and hourlyWindow use them: only what they can use is read. */
  private async pendingBackfills(provider: SourceProvider, defs: SeriesDef[]): Promise<PendingBackfills> {
    const splits = this.splitsHourly(provider, defs);
    const [from, hourly] = await Promise.all([
      (provider.backfill && this.backfillMs > 0) || splits ? this.series.pendingBackfill(provider.id) : null,
      splits ? this.series.pendingHourlyBackfill(provider.id) : null,
    ]);
    return { from, hourly };
  }

  /** Whether a first backfill of this source is split: its last 24 h by the minute, the rest hourly. */
  private splitsHourly(provider: SourceProvider, defs: SeriesDef[]): boolean {
    return provider.backfillHourly !== undefined && this.backfillMs > FINE_SPAN_MS && defs.every((d) => d.cadence === 'tick');
  }

  /** The backfill's samples, or why it failed (an upstream failure does not fail the run: the poll is stored anyway). */
  private async fetchBackfill(provider: SourceProvider, window: Window, hourly = false): Promise<Backfill> {
    const dto: BackfillReportDto = {
      from: new Date(window.from).toISOString(),
      to: new Date(window.to).toISOString(),
      attempts: 0,
      fetched: 0,
      invalid: 0,
      stored: 0,
      duplicates: 0,
      rejected: 0,
      error: null,
    };
    // A pause the upstream asked for earlier in this run (the hourly backfill's 429): this one
    // waits too, and is retried on a later run like any transient failure.
    const notBefore = await this.series.upstreamNotBefore(provider.id);
    if (notBefore !== null) {
      dto.error = new UpstreamPausedError(notBefore).message;
      return { dto, batch: null, retry: true };
    }
    try {
      const batch = this.withoutFuture(provider.id, hourly ? await provider.backfillHourly!(window.from, window.to) : await provider.backfill!(window.from, window.to));
      Object.assign(dto, { attempts: batch.attempts, fetched: batch.fetched, invalid: batch.invalid });
      return { dto, batch, retry: false };
    } catch (err) {
      // Only the upstream's failures are the backfill's: Redis or a bug fails the run.
      if (!(err instanceof SourceError)) throw err;
      await this.pauseIfAsked(provider.id, err);
      dto.attempts = err.attempts ?? 0;
      dto.error = err.message;
      // Garbage is retried too: a 200 that is no JSON is mostly a CDN's or WAF's challenge page
      // or a maintenance page, gone on a later run, and the first backfill is the only one that
      // fetches those hours (given up, the series kept the gap for good). Bounded like a
      // transient failure: the pending window expires with BACKFILL_HOURS.
      return { dto, batch: null, retry: err instanceof TransientUpstreamError || err instanceof PayloadError };
    }
  }

  /**
   * When a backfill that failed `failures` runs in a row, the last one begun at `started`, is
   * tried again: 1, 2, 4, 8… intervals later (on the next run, then every other one…), at most
   * an hour. Retried on every run, one broken for good (a candles endpoint that changed shape
   * while the ticker still works) cost its calls and a warning every INGEST_INTERVAL_MS for
   * BACKFILL_HOURS. Half an interval early: another instance's tick may begin a moment before
   * a whole interval has passed since this run began.
   */
  private retryAt(started: number, failures: number): number {
    const delay = Math.min(this.tickIntervalMs * 2 ** Math.min(failures - 1, 20), MAX_BACKFILL_RETRY_DELAY_MS);
    return Math.ceil(started + delay - this.tickIntervalMs / 2);
  }

  /** How a failed backfill's warning ends: when it is tried again. */
  private static retryNote(pending: PendingBackfill): string {
    return pending.failures === 1 ? 'retried on the next run' : `failed ${pending.failures} runs in a row; retried on the first run from ${new Date(pending.retryAt).toISOString()}`;
  }

  /**
   * Stored: nothing left to do. Failed transiently (network, 5xx, 429) or with garbage (see
   * fetchBackfill): kept in Redis and retried on a later run (see retryAt). Failed for good (4xx,
   * a redirect elsewhere): given up, said once; a later gap starts a new one.
   */
  private async settleBackfill(provider: SourceProvider, backfill: Backfill, window: Window, stored: Record<string, AddReport>, before: PendingBackfill | null, started: number): Promise<void> {
    const { dto } = backfill;
    if (backfill.batch) {
      Object.assign(dto, totals(stored));
      await this.series.clearPendingBackfill(provider.id);
      this.logger.log(`backfill ${provider.id} ${dto.from} → ${dto.to}: fetched=${dto.fetched} stored=${dto.stored} duplicates=${dto.duplicates}`);
    } else if (backfill.retry) {
      const failures = (before?.failures ?? 0) + 1;
      const pending = { from: window.from, failures, retryAt: this.retryAt(started, failures) };
      await this.series.setPendingBackfill(provider.id, pending, this.backfillMs);
      this.logger.warn(`backfill ${provider.id} failed (${SentimentIngestService.retryNote(pending)}): ${dto.error}`);
    } else {
      await this.series.clearPendingBackfill(provider.id);
      this.logger.warn(`backfill ${provider.id} failed (not retried): ${dto.error}`);
    }
  }

  /** The hourly part: stored and done, retried later (kept in Redis with its boundary), or given up. */
  private async settleHourly(provider: SourceProvider, hourly: Backfill, window: HourlyWindow, stored: Record<string, AddReport>, before: PendingHourlyBackfill | null, started: number): Promise<void> {
    const { dto } = hourly;
    if (hourly.batch) {
      Object.assign(dto, totals(stored));
      await this.series.clearPendingHourlyBackfill(provider.id);
      this.logger.log(`hourly backfill ${provider.id} ${dto.from} → ${dto.to}: fetched=${dto.fetched} stored=${dto.stored} duplicates=${dto.duplicates}`);
    } else if (hourly.retry) {
      const failures = (before?.failures ?? 0) + 1;
      const pending = { from: window.from, until: window.until, failures, retryAt: this.retryAt(started, failures) };
      await this.series.setPendingHourlyBackfill(provider.id, pending, this.backfillMs);
      this.logger.warn(`hourly backfill ${provider.id} failed (${SentimentIngestService.retryNote(pending)}): ${dto.error}`);
    } else {
      await this.series.clearPendingHourlyBackfill(provider.id);
      this.logger.warn(`hourly backfill ${provider.id} failed (not retried): ${dto.error}`);
    }
  }

  /**
   * Says once per source and process when a series' newest sample is dated past what ingest now
   * accepts: stored before that check existed (or by hand), it holds back every later poll.
   */
  private warnIfAhead(source: SourceId, defs: SeriesDef[], latest: (Sample | null)[], now: number): void {
    const i = latest.findIndex((s) => s !== null && s.timestamp > now + this.maxAheadMs);
    if (i < 0 || this.aheadLogged.has(source)) return;
    this.aheadLogged.add(source);
    this.logger.warn(
      `${source}: the newest ${defs[i].metric} sample is dated ${new Date(latest[i]!.timestamp).toISOString()}, ahead of this server's clock: polls store nothing older, so nothing until then; remove the samples dated ahead if they are wrong`,
    );
  }

  /**
   * The batch without its samples dated more than INGEST_MAX_AHEAD_MS ahead of now, counted as
   * invalid records (one per timestamp: a record gives each metric a sample at its time). One
   * such sample would trim the series' history and hold back every later poll (see the
   * setting). Checked here, once for every source, then the garbage rule again: a ticker whose
   * only record is from the future fails the run like any other invalid record.
   */
  private withoutFuture(source: SourceId, batch: SourceBatch): SourceBatch {
    const latest = Date.now() + this.maxAheadMs;
    // Samples come oldest first: when no list's newest is ahead, the batch is kept as it is.
    if (!Object.values(batch.samples).some((list) => (list.at(-1)?.timestamp ?? -Infinity) > latest)) return batch;
    const dropped = new Set<number>();
    const kept = new Set<number>();
    const samples: SourceBatch['samples'] = {};
    for (const [metric, list] of Object.entries(batch.samples) as [keyof SourceBatch['samples'], Sample[]][]) {
      samples[metric] = list.filter((s) => {
        const ok = s.timestamp <= latest;
        (ok ? kept : dropped).add(s.timestamp);
        return ok;
      });
    }
    const reason = `${dropped.size} record(s) dated in the future (more than ${this.maxAheadMs} ms ahead of this server's clock, INGEST_MAX_AHEAD_MS)`;
    return stillMostlyValid(source, { ...batch, samples, invalid: batch.invalid + dropped.size, invalidReasons: [reason, ...batch.invalidReasons].slice(0, 5) }, kept.size);
  }

  /**
   * The poll's batch without its price samples that jumped more than PRICE_MAX_JUMP_PCT from the
   * venue's previous price (withoutPriceJumps), counted as invalid records; then the garbage
   * rule again, as withoutFuture: a ticker whose only price is refused fails the run.
   */
  private withoutPriceJumps(source: SourceId, defs: SeriesDef[], before: (Sample | null)[], batch: SourceBatch): SourceBatch {
    const i = defs.findIndex((d) => d.metric === 'price');
    const prices = batch.samples.price;
    if (i < 0 || prices === undefined || prices.length === 0) return batch;
    const { kept, dropped } = withoutPriceJumps(prices, before[i], this.maxJumpPct, this.priceStaleMs);
    if (dropped === 0) return batch;
    const reason = `${dropped} price(s) more than ${this.maxJumpPct} % from the venue's previous one (PRICE_MAX_JUMP_PCT)`;
    const samples = { ...batch.samples, price: kept };
    const records = new Set(Object.values(samples).flatMap((list) => list.map((s) => s.timestamp))).size;
    return stillMostlyValid(source, { ...batch, samples, invalid: batch.invalid + dropped, invalidReasons: [reason, ...batch.invalidReasons].slice(0, 5) }, records);
  }

  /** The hourly samples of each series the source feeds (see SeriesRepository.addHourly). */
  private async storeHourly(defs: SeriesDef[], batch: SourceBatch, until: number): Promise<Record<string, AddReport>> {
    const reports = await Promise.all(defs.map((d) => this.series.addHourly(d, batch.samples[d.metric] ?? [], until)));
    return Object.fromEntries(defs.map((d, i) => [d.metric, reports[i]]));
  }

  /** TS.MADD of the batch's samples of each series the source feeds (others are ignored). */
  private async store(defs: SeriesDef[], batch: SourceBatch): Promise<Record<string, AddReport>> {
    const reports = await Promise.all(defs.map((d) => this.series.add(d, batch.samples[d.metric] ?? [])));
    return Object.fromEntries(defs.map((d, i) => [d.metric, reports[i]]));
  }

  private report(
    source: SourceId,
    started: number,
    defs: SeriesDef[],
    before: (Sample | null)[],
    batch: SourceBatch,
    polled: Record<string, AddReport>,
    backfill: Backfill | null,
    backfilled: Record<string, AddReport>,
    hourly: Backfill | null,
    hourlyStored: Record<string, AddReport>,
  ): SourceReportDto {
    const series: SeriesCountsByMetricDto = {};
    let newest = -Infinity;
    defs.forEach((d, i) => {
      const parts = [polled[d.metric], backfilled[d.metric], hourlyStored[d.metric]].filter((r): r is AddReport => r !== undefined);
      series[d.metric] = {
        stored: sum(parts.map((r) => r.stored)),
        duplicates: sum(parts.map((r) => r.duplicates)),
        rejected: sum(parts.map((r) => r.rejected)),
      };
      const sent = [...(batch.samples[d.metric] ?? []), ...(backfill?.batch?.samples[d.metric] ?? []), ...(hourly?.batch?.samples[d.metric] ?? [])];
      const latest = sent.reduce((max, s) => Math.max(max, s.timestamp), before[i]?.timestamp ?? -Infinity);
      newest = Math.max(newest, latest);
    });
    const counts = Object.values(series);
    return {
      source,
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      attempts: batch.attempts + (backfill?.dto.attempts ?? 0) + (hourly?.dto.attempts ?? 0),
      fetched: batch.fetched + (backfill?.dto.fetched ?? 0) + (hourly?.dto.fetched ?? 0),
      invalid: batch.invalid + (backfill?.dto.invalid ?? 0) + (hourly?.dto.invalid ?? 0),
      invalidReasons: [...batch.invalidReasons, ...(backfill?.batch?.invalidReasons ?? []), ...(hourly?.batch?.invalidReasons ?? [])].slice(0, 5),
      skipped: batch.skipped,
      stored: sum(counts.map((c) => c.stored)),
      duplicates: sum(counts.map((c) => c.duplicates)),
      rejected: sum(counts.map((c) => c.rejected)),
      series,
      backfill: backfill?.dto ?? null,
      // Only when there was one, so reports without it read exactly as before.
      ...(hourly ? { hourlyBackfill: hourly.dto } : {}),
      latestSampleTime: Number.isFinite(newest) ? new Date(newest).toISOString() : null,
    };
  }

  private countSuccess(source: SourceId, at: number, report: SourceReportDto, defs: SeriesDef[]): void {
    this.metrics.ingestRuns.inc({ outcome: 'success' });
    this.metrics.sourceRuns.inc({ source, outcome: 'success' });
    this.metrics.lastIngestSuccess.set(Math.floor(at / 1000));
    this.succeeded.add(source);
    this.metrics.sourceLastSuccess.set({ source }, Math.floor(at / 1000));
    this.metrics.invalidRecords.inc({ source }, report.invalid);
    for (const d of defs) {
      const c = report.series[d.metric];
      if (!c) continue;
      this.metrics.samples.inc({ source, series: d.metric, outcome: 'stored' }, c.stored);
      this.metrics.samples.inc({ source, series: d.metric, outcome: 'duplicate' }, c.duplicates);
      this.metrics.samples.inc({ source, series: d.metric, outcome: 'rejected' }, c.rejected);
    }
  }
}

/**
 * Where a first backfill's 1-minute part starts: the top of the hour 24 h ago, or the first
 * whole hour the provider's 1-minute history still holds (Kraken: 720 rows, the newest still
 * open, so a little less than 12 h; two minutes of margin), so that hour is complete.
 */
export function fineStart(now: number, reachMs?: number): number {
  const start = Math.floor((now - FINE_SPAN_MS) / HOUR_MS) * HOUR_MS;
  if (reachMs === undefined || now - start <= reachMs - 2 * 60_000) return start;
  return Math.ceil((now - reachMs + 2 * 60_000) / HOUR_MS) * HOUR_MS;
}

/** Totals of a POST /refresh over the sources that succeeded. */
function combine(started: number, outcomes: SourceOutcomeDto[]): IngestReportDto {
  const reports = outcomes.flatMap((o) => (o.report ? [o.report] : []));
  const newest = reports.map((r) => r.latestSampleTime).filter((t): t is string => t !== null).sort().pop() ?? null;
  return {
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    attempts: sum(reports.map((r) => r.attempts)),
    fetched: sum(reports.map((r) => r.fetched)),
    invalid: sum(reports.map((r) => r.invalid)),
    invalidReasons: reports.flatMap((r) => r.invalidReasons).slice(0, 5),
    skipped: sum(reports.map((r) => r.skipped)),
    stored: sum(reports.map((r) => r.stored)),
    duplicates: sum(reports.map((r) => r.duplicates)),
    rejected: sum(reports.map((r) => r.rejected)),
    series: seriesTotals(reports.map((r) => r.series)),
    latestSampleTime: newest,
    sources: outcomes,
  };
}

/** Per metric, the counts of every source that fed it (three venues feed price). */
function seriesTotals(each: SeriesCountsByMetricDto[]): SeriesCountsByMetricDto {
  const out: SeriesCountsByMetricDto = {};
  for (const counts of each) {
    for (const metric of ['price', 'sentiment'] as const) {
      const c = counts[metric];
      if (!c) continue;
      const t = (out[metric] ??= { stored: 0, duplicates: 0, rejected: 0 });
      t.stored += c.stored;
      t.duplicates += c.duplicates;
      t.rejected += c.rejected;
    }
  }
  return out;
}

function totals(stored: Record<string, AddReport>): { stored: number; duplicates: number; rejected: number } {
  const all = Object.values(stored);
  return { stored: sum(all.map((r) => r.stored)), duplicates: sum(all.map((r) => r.duplicates)), rejected: sum(all.map((r) => r.rejected)) };
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** What a client may read about a source's failure: our own upstream messages, never Redis' or a bug's text. */
function publicReason(err: unknown): string {
  if (err instanceof SourceError) return err.message;
  return isRedisUnavailableError(err) ? 'the data store is unavailable' : 'internal error (see the service log)';
}

function outcomeOf(err: unknown): IngestOutcome {
  if (err instanceof UpstreamPausedError) return 'skipped';
  if (err instanceof PayloadError) return 'payload_error';
  if (err instanceof SourceError) return 'upstream_error';
  if (isRedisUnavailableError(err)) return 'redis_error';
  return 'error';
}

/**
 * `batch` after ingest refused more of its records (`records`: how many still give a sample, one
 * per timestamp), or the garbage rule's PayloadError, of `source`, when those are now the fewer.
 */
function stillMostlyValid(source: SourceId, batch: SourceBatch, records: number): SourceBatch {
  try {
    assertMostlyValid({ ...batch, values: Array.from({ length: records }) });
  } catch (err) {
    (err as PayloadError).source = source;
    throw err;
  }
  return batch;
}
