import { Inject, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { LuaScript } from '../redis/lua-script.js';
import { RedisClient } from '../redis/redis.types.js';

export interface CacheEntry<T> {
  value: T;
  /** Epoch ms when the value was computed. */
  storedAt: number;
}

/** A held entry's value as JSON, serialized once, for CacheFastPath. */
export interface HeldJson {
  body: string;
  /** Length of body in bytes, as the Content-Length text. */
  bytes: string;
  /** Epoch ms when the value was computed. */
  storedAt: number;
}

interface L1Slot {
  read: Promise<CacheEntry<unknown> | null>;
  /** The entry once `read` has resolved to one. */
  entry?: CacheEntry<unknown>;
  /** JSON of entry.value and its length in bytes, made once, for the fast path. */
  json?: HeldJson;
  until: number;
  /** The read refreshing an expired copy, while the copy is still served (see peekJson). */
  refresh?: Promise<CacheEntry<unknown> | null>;
}

const SET_UNLESS_NEWER = new LuaScript(`
local held = redis.call('GET', KEYS[1])
local order = held and tonumber(string.match(held, '^{"order":(%d+),'))
if order and order > tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
`);

/** Most keys kept in memory (GET handlers keyed on their URL could otherwise grow it without bound). */
const L1_MAX_KEYS = 1000;

/**
 * JSON values in Redis with a TTL, shared by every instance. Keys come from RedisKeys.
 *
 * In front of Redis, an in-process copy (L1): a read of a key within CACHE_L1_TTL_MS of the
 * last Redis read of it is answered from memory, and concurrent reads share one Redis GET.
 * Measured: under load, the per-request Redis round trip (and the Redis server's CPU on the
 * same machine) was most of the cost of a cached GET. Redis stays the source of truth: this
 * process's own writes (ingest priming, a computed miss) update the copy at once, and a change
 * made in Redis by another instance (or by hand) is seen within twice CACHE_L1_TTL_MS (an
 * expired copy is still served by the fast path while one read refreshes it, see peekJson).
 * Only entries found in Redis are kept; a miss is never remembered. CACHE_L1_TTL_MS=0 turns it off.
 */
@Injectable()
export class CacheService {
  private readonly l1Ms: number;
  private readonly l1 = new Map<string, L1Slot>();
  /** The newest entry of each key this process has read or written, for lastGood. */
  private readonly newest = new Map<string, CacheEntry<unknown>>();

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    config: ConfigService<Env, true>,
  ) {
    this.l1Ms = config.get('CACHE_L1_TTL_MS', { infer: true });
  }

  /**
   * JSON of the value held in memory for `key`, for CacheFastPath, which answers without
   * entering Nest; serialized once per entry. Fresh, it never touches Redis. Expired less than
   * CACHE_L1_TTL_MS ago, it is still returned while one read (started here, not awaited)
   * refreshes it: otherwise every request would go through Nest until that read is back, and
   * measured with `npm run bench` (wrk, 64 connections) that once-a-second window was ~25 % of
   * the hits' p99 and ~5 % of their throughput. So a copy lags Redis by under 2 × CACHE_L1_TTL_MS.
   */
  peekJson(key: string): HeldJson | undefined {
    const held = this.l1.get(key);
    if (!held?.entry) return undefined;
    const now = Date.now();
    if (held.until <= now) {
      if (now - held.until >= this.l1Ms) return undefined;
      void this.refresh(key, held);
    }
    if (held.json === undefined) {
      const body = JSON.stringify(held.entry.value);
      held.json = { body, bytes: String(Buffer.byteLength(body)), storedAt: held.entry.storedAt };
    }
    return held.json;
  }

  /**
   * The newest entry of `key` this process has seen, however old: read from Redis (the fast
   * path's refreshes included), or written by it (ingest priming, a computed miss). What
   * CacheInterceptor serves as STALE while Redis is unavailable; kept apart from the copy the
   * fast path answers from, which lives only CACHE_L1_TTL_MS.
   */
  lastGood<T>(key: string): CacheEntry<T> | undefined {
    return this.newest.get(key) as CacheEntry<T> | undefined;
  }

  /**
   * Holds a value this process computed but could not store in Redis (its write refused, e.g.
   * OOM under `maxmemory`), as if read: for CACHE_L1_TTL_MS the fast path and `get` answer it, so
   * a refused write does not turn every request into a computation.
   */
  hold<T>(key: string, entry: CacheEntry<T>): void {
    this.note(key, entry);
    if (this.l1Ms > 0) this.remember(key, Promise.resolve(entry)).entry = entry;
  }

  get<T>(key: string): Promise<CacheEntry<T> | null> {
    if (this.l1Ms === 0) return this.read<T>(key);
    const held = this.l1.get(key);
    if (held && held.until > Date.now()) return held.read as Promise<CacheEntry<T> | null>;
    // An expired copy stays servable by peekJson while it is refreshed.
    if (held?.entry) return this.refresh(key, held) as Promise<CacheEntry<T> | null>;
    const read = this.read<T>(key);
    const slot = this.remember(key, read);
    // Forget a miss or a failed read (unless a newer read or write has replaced it meanwhile).
    const forget = () => {
      if (this.l1.get(key) === slot) this.l1.delete(key);
    };
    read.then((entry) => (entry === null ? forget() : (slot.entry = entry)), forget);
    return read;
  }

  /**
   * Stores `value` unless the key holds one of a later `order` (epoch ms of what it is as of),
   * in one script: two instances refreshing at once must not leave the older answer last
   * (the verdict's own check passes both when the older one records first and caches last).
   * Returns whether it was stored.
   */
  async setUnlessNewer<T>(key: string, value: T, ttlSeconds: number, order: number, storedAt = Date.now()): Promise<boolean> {
    const entry: CacheEntry<T> = { value, storedAt };
    // `order` first in the JSON: the script reads it with one anchored match, no JSON decoding.
    const text = JSON.stringify({ order, ...entry });
    const stored = (await SET_UNLESS_NEWER.run(this.redis, [key], [text, String(ttlSeconds), String(order)])) === 1;
    if (stored) this.hold(key, entry);
    return stored;
  }

  /**
   * Stores `value` only if the key holds nothing (SET NX): for a value computed on a miss. One
   * written meanwhile (an ingest's refresh, which reads data at least as new and records the
   * verdict first) is kept, not replaced by a computation that may have read older data.
   * Returns whether it was stored.
   */
  async fill<T>(key: string, value: T, ttlSeconds: number, storedAt = Date.now()): Promise<boolean> {
    const entry: CacheEntry<T> = { value, storedAt };
    const stored = (await this.redis.set(key, JSON.stringify(entry), 'EX', ttlSeconds, 'NX')) !== null;
    if (stored) this.hold(key, entry);
    return stored;
  }

  /** One read of `key` for an expired copy, shared; the copy is replaced by its answer, or dropped on a miss or an error. */
  private refresh(key: string, held: L1Slot): Promise<CacheEntry<unknown> | null> {
    if (held.refresh) return held.refresh;
    const read = this.read(key);
    held.refresh = read;
    const replaced = () => this.l1.get(key) !== held; // by a write or a newer read meanwhile
    read.then(
      (entry) => {
        if (replaced()) return;
        if (entry === null) this.l1.delete(key);
        else this.remember(key, read).entry = entry;
      },
      () => {
        if (!replaced()) this.l1.delete(key);
      },
    );
    return read;
  }

  private remember(key: string, read: Promise<CacheEntry<unknown> | null>): L1Slot {
    this.l1.delete(key); // re-inserted last: the Map's order is then oldest-first for eviction
    if (this.l1.size >= L1_MAX_KEYS) this.l1.delete(this.l1.keys().next().value as string);
    const slot: L1Slot = { read, until: Date.now() + this.l1Ms };
    this.l1.set(key, slot);
    return slot;
  }

  private async read<T>(key: string): Promise<CacheEntry<T> | null> {
    const raw = await this.redis.get(key);
    if (raw === null) return null;
    let entry: CacheEntry<T>;
    try {
      entry = JSON.parse(raw) as CacheEntry<T>;
    } catch {
      return null; // not ours or corrupted: a miss, overwritten on the next set
    }
    if (typeof entry !== 'object' || entry === null || !('value' in entry)) return null;
    this.note(key, entry);
    return entry;
  }

  /** Keeps `entry` as `key`'s newest unless a later one is known (bounded like the copies). */
  private note(key: string, entry: CacheEntry<unknown>): void {
    const known = this.newest.get(key);
    if (known && known.storedAt > entry.storedAt) return;
    if (!known && this.newest.size >= L1_MAX_KEYS) this.newest.delete(this.newest.keys().next().value as string);
    this.newest.set(key, entry);
  }
}
