import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import type { MetricName, SourceId } from '../sources/source.types.js';
import { sameSlotKey } from './key-slot.js';

/** The original feed: its series, lease and last-success keys keep their original names. */
const LEGACY_SOURCE: SourceId = 'senticrypt-v1';

/**
 * Every Redis key name the service uses, built here and nowhere else, under REDIS_KEY_PREFIX.
 * Defaults match the original app (`is-bitcoin-lit:price:mean:30s`, `…:cache`).
 *
 * Redis Cluster: each of these keys is used alone by every command, so they may live on
 * different masters. Keys that one command, script, transaction or TS.CREATERULE must touch
 * together have to share a slot: build the second one with `sameSlot`.
 */
@Injectable()
export class RedisKeys {
  readonly prefix: string;

  constructor(config: ConfigService<Env, true>) {
    this.prefix = config.get('REDIS_KEY_PREFIX', { infer: true });
  }

  /**
   * Raw series of one metric from one source: `<prefix>:price:coinbase`, or the original
   * `<prefix>:price:mean:30s` for SentiCrypt v1 (upgrades keep their data). One key per source,
   * so switching sources never mixes scales (fear-greed 0..100 vs senticrypt -1..1) in a series.
   */
  series(metric: MetricName, source: SourceId): string {
    return source === LEGACY_SOURCE ? `${this.prefix}:${metric}:mean:30s` : `${this.prefix}:${metric}:${source}`;
  }

  /**
   * Compaction of a raw series, e.g. `{is-bitcoin-lit:price:mean:30s}:sum:1h`: the raw key as
   * hash tag keeps it in the raw series' cluster slot, which TS.CREATERULE and the compaction
   * writes need (both keys on one shard).
   */
  compaction(seriesKey: string, aggregation: string, bucket: string): string {
    return sameSlotKey(seriesKey, `${aggregation}:${bucket}`);
  }

  /** Cache entry `name` (the summary lives at the bare `<prefix>:cache`, as in the original). */
  cache(name?: string): string {
    return name ? `${this.prefix}:cache:${name}` : `${this.prefix}:cache`;
  }

  /** Pub/sub channel of live notifications (ingest events), shared by every instance. */
  events(): string {
    return `${this.prefix}:events`;
  }

  /**
   * A key that lives in the same cluster slot as `key` (e.g. the compaction of a series:
   * `sameSlot(series('price'), 'avg:1h')` → `{<prefix>:price:mean:30s}:avg:1h`).
   */
  sameSlot(key: string, suffix: string): string {
    return sameSlotKey(key, suffix);
  }

  /** Epoch ms of the last successful run of one source by any instance (readiness reads it). */
  ingestLastSuccess(source: SourceId): string {
    return source === LEGACY_SOURCE ? `${this.prefix}:ingest:last-success` : `${this.prefix}:ingest:last-success:${source}`;
  }

  /**
   * `<from>:<failures>:<retryAt>` (epoch ms, a count, epoch ms) of a source's backfill that failed
   * and is retried on a later run (`<from>` alone before retries were spaced out).
   */
  backfillPending(source: SourceId): string {
    return `${this.prefix}:ingest:backfill-pending:${source}`;
  }

  /**
   * `<from>:<until>:<failures>:<retryAt>` of a source's hourly history (a first backfill's part
   * before its 1-minute window, which starts at `until`) that failed and is retried on a later
   * run (`<from>:<until>` alone before retries were spaced out).
   */
  backfillPendingHourly(source: SourceId): string {
    return `${this.prefix}:ingest:backfill-pending-hourly:${source}`;
  }

  /**
   * Epoch ms before which no instance calls one source's upstream: it answered with a
   * `Retry-After` the HTTP client did not wait out. Expires at that time.
   */
  ingestNotBefore(source: SourceId): string {
    return `${this.prefix}:ingest:not-before:${source}`;
  }

  /** Lease of one source's scheduled runs (one instance polls a source per tick). */
  ingestLock(source: SourceId): string {
    return this.lock(source === LEGACY_SOURCE ? 'ingest' : `ingest:${source}`);
  }

  /**
   * Rate-limit counter of one client for one throttler. The client part comes from the request
   * (X-Forwarded-For with TRUST_PROXY): its braces are escaped, so it neither picks the key's
   * cluster slot (`{x}`) nor makes a key no companion can share a slot with (`a{}b`: a 500).
   */
  throttle(name: string): string {
    return `${this.prefix}:throttle:${name.replace(/[{}%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
  }

  /** The verdict series (lit 1, mixed 0, cold -1, unknown 2 after each evaluation): `<prefix>:verdict`. */
  verdictSeries(): string {
    return `${this.prefix}:verdict`;
  }

  /** The current verdict, its start and the newest evaluation's time (a hash every instance compares-and-sets). */
  verdictState(): string {
    return `${this.prefix}:verdict:state`;
  }

  /** The last verdict changes (a capped list), written by the same script as the state: same slot. */
  verdictChanges(): string {
    return sameSlotKey(this.verdictState(), 'changes');
  }

  /**
   * Webhook deliveries due to one receiver (a sorted set: delivery id → due time), and beside it,
   * in the same slot (the queue scripts touch them together), their bodies, attempt counts and
   * the last change queued.
   * `receiver` is a digest of the URL, so no URL (or credential in one) is a key name.
   */
  alertDue(receiver: string): string {
    return `${this.prefix}:alerts:${receiver}:due`;
  }

  alertBodies(receiver: string): string {
    return sameSlotKey(this.alertDue(receiver), 'bodies');
  }

  alertAttempts(receiver: string): string {
    return sameSlotKey(this.alertDue(receiver), 'attempts');
  }

  /** Id of the last verdict change queued for one receiver (so a change is queued once, by whoever sees it first). */
  alertLastQueued(receiver: string): string {
    return sameSlotKey(this.alertDue(receiver), 'last');
  }

  /** `since` (epoch ms) of the newest change queued (read by instances from before alertQueuedIds). */
  alertLastQueuedSince(receiver: string): string {
    return sameSlotKey(this.alertDue(receiver), 'last-since');
  }

  /** The ids of the last changes queued for one receiver (a sorted set: id → since), so each is queued once. */
  alertQueuedIds(receiver: string): string {
    return sameSlotKey(this.alertDue(receiver), 'queued-ids');
  }

  /** When each pending delivery of one receiver was queued (a sorted set: id → ms), so the oldest goes first when the queue is full. */
  alertQueued(receiver: string): string {
    return sameSlotKey(this.alertDue(receiver), 'queued');
  }

  /** Lease lock `name`, e.g. `<prefix>:lock:ingest` (held by one instance per ingest tick). */
  lock(name: string): string {
    return `${this.prefix}:lock:${name}`;
  }
}
