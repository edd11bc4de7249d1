import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Counter, Gauge } from 'prom-client';
import { Env } from '../config/env.validation.js';
import { countFromZero, MetricsService } from '../metrics/metrics.service.js';
import { LUA_NOW_MS, LuaScript } from '../redis/lua-script.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisKeys } from '../redis/redis-keys.service.js';
import { RedisClient } from '../redis/redis.types.js';
import { SourceHttpClient } from '../sources/source-http.service.js';
import { TransientUpstreamError } from '../sources/source.errors.js';
import type { VerdictChangedEventDto } from '../verdict/dto/verdict.dto.js';
import { VerdictEvents } from '../verdict/verdict.events.js';
import { VerdictService } from '../verdict/verdict.service.js';
import { Receiver, toReceiver } from './alert-receivers.js';
import { IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature } from './webhook-signature.js';

export type DeliveryOutcome = 'delivered' | 'retry' | 'rejected' | 'exhausted' | 'dropped';

/** How recent a change must be for catch-up to queue it (see catchUp). */
export const CATCH_UP_MS = 3_600_000;

// Every receiver has seven keys in one slot: due (sorted set id → due ms, Redis clock), bodies
// (hash id → JSON), attempts (hash id → attempts started), last (the id of the newest change
// queued), queued (sorted set id → when it was queued: the oldest is dropped first), last-since
// (the `since` of that change), queued-ids (sorted set id → since: the last QUEUED_IDS changes
// queued, so each is queued once). All times come from the Redis server's clock (TIME), so
// instances with skewed clocks agree on what is due.
// Each key lives ALERT_WEBHOOK_KEY_TTL_MS, set again by every ENQUEUE and CLAIM (the loops claim
// at least every poll): the queue of a receiver no instance serves any more ends by itself,
// and none is ever deleted by an instance that does not know the receiver (during a rolling
// deploy another instance may still serve it).

/** Changes remembered per receiver as queued (catch-up only ever re-reads the last hour's last one). */
const QUEUED_IDS = 64;

/** `body` (a script on the seven keys), then every key's TTL set to ARGV[ttlArg] ms, in the same script. */
function refreshingTtl(body: string, ttlArg: number): string {
  return `local function run()
${body}
end
local reply = run()
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[${ttlArg}]) end
return reply`;
}

/**
 * Queues a delivery, due now, unless this change was queued before (by the instance that made
 * it, or by another that caught up with it first, or by the same instance or a catch-up getting
 * there again late): each change reaches a receiver once however many instances see it, and a
 * change made just before a newer one is still sent when its queueing comes after the newer
 * one's (refusing every change older than the last queued lost it). Then, while more than
 * ARGV[3] are pending, gives up the oldest queued. `last` and `last-since` still name the newest
 * change queued, for instances from before queued-ids (they refuse anything older). KEYS: due,
 * bodies, attempts, last, queued, last's `since`, queued-ids. ARGV: id, body, max pending, key
 * TTL, the change's `since` (ms). Returns {queued (0/1), ids given up...}.
 */
const ENQUEUE = new LuaScript(LUA_NOW_MS + refreshingTtl(`
if redis.call('ZSCORE', KEYS[7], ARGV[1]) or redis.call('GET', KEYS[4]) == ARGV[1] then return {0} end
local now = now_ms()
local since = tonumber(ARGV[5])
redis.call('ZADD', KEYS[7], since or now, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -${QUEUED_IDS + 1})
local newest = tonumber(redis.call('GET', KEYS[6]))
if not (newest and since and since < newest) then
  redis.call('SET', KEYS[4], ARGV[1])
  if since then redis.call('SET', KEYS[6], ARGV[5]) end
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return {0} end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZADD', KEYS[5], now, ARGV[1])
local reply = {1}
while redis.call('ZCARD', KEYS[5]) > tonumber(ARGV[3]) do
  local id = redis.call('ZPOPMIN', KEYS[5])[1]
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  reply[#reply + 1] = id
end
return reply`, 4));

/**
 * Claims the oldest due delivery: its due time moves to now + lease (while it is out, nobody
 * else gets it; if the claimer dies, it is due again when the lease ends) and its attempt count
 * goes up. ARGV: leaseMs, key TTL. Returns {id, body, attempt, lease} or nil; `lease` is the
 * claim's token.
 */
const CLAIM = new LuaScript(LUA_NOW_MS + refreshingTtl(`
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #ids == 0 then return false end
local id = ids[1]
local body = redis.call('HGET', KEYS[2], id)
if not body then
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[5], id)
  return false
end
local lease = now + tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], lease, id)
local attempt = redis.call('HINCRBY', KEYS[3], id, 1)
return {id, body, attempt, lease}`, 2));

/**
 * Ends a claimed attempt, if the claim is still ours (its due time is still our lease): `done`
 * forgets the delivery, `retry` makes it due ARGV[4] ms from now, `release` too and takes the
 * attempt back (cut short by a shutdown: it does not count toward ALERT_WEBHOOK_MAX_ATTEMPTS).
 * ARGV: id, lease, action, delayMs. Creates no key and keeps their TTLs (ZADD, HDEL and HINCRBY
 * on the claimed field do): the claim just set them.
 */
const FINISH = new LuaScript(`${LUA_NOW_MS}
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == 'done' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  return 1
end
if ARGV[3] == 'release' then redis.call('HINCRBY', KEYS[3], ARGV[1], -1) end
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[4]), ARGV[1])
return 1`);

interface Claimed {
  id: string;
  body: string;
  attempt: number;
  lease: number;
}

/**
 * Webhooks for `verdict.changed`: the instance that made a change queues one delivery per
 * receiver in Redis; every instance runs one loop per receiver that claims due deliveries
 * atomically and POSTs them through the shared HTTP client, signed, with the event id as
 * Idempotency-Key. At least once: a delivery leaves Redis only after a 2xx, a permanent refusal
 * or ALERT_WEBHOOK_MAX_ATTEMPTS attempts (or when ALERT_WEBHOOK_MAX_PENDING newer ones are
 * queued behind it); a claim whose instance died is due again after its
 * lease. Receivers have separate loops and queues, and the ingest only queues, so a slow or
 * dead receiver delays nobody else.
 */
@Injectable()
export class AlertsService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(AlertsService.name);
  private readonly receivers: Receiver[];
  /** Signing keys: ALERT_WEBHOOK_SECRET, and ALERT_WEBHOOK_PREVIOUS_SECRET while it is rotated. */
  private readonly secrets: string[];
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly pollMs: number;
  private readonly leaseMs: number;
  private readonly maxPending: number;
  private readonly keyTtlMs: string;
  private readonly deliveries: Counter<'outcome'>;
  private readonly stop = new AbortController();
  private readonly wakers = new Map<string, () => void>();
  private loops: Promise<void>[] = [];

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly http: SourceHttpClient,
    private readonly verdictEvents: VerdictEvents,
    private readonly verdicts: VerdictService,
    metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.receivers = config.get('ALERT_WEBHOOK_URLS', { infer: true }).map(toReceiver);
    this.secrets = [config.get('ALERT_WEBHOOK_SECRET', { infer: true }), config.get('ALERT_WEBHOOK_PREVIOUS_SECRET', { infer: true })].filter((s) => s !== '');
    this.timeoutMs = config.get('ALERT_WEBHOOK_TIMEOUT_MS', { infer: true });
    this.maxAttempts = config.get('ALERT_WEBHOOK_MAX_ATTEMPTS', { infer: true });
    this.retryBaseMs = config.get('ALERT_WEBHOOK_RETRY_BASE_MS', { infer: true });
    this.retryMaxMs = config.get('ALERT_WEBHOOK_RETRY_MAX_MS', { infer: true });
    this.pollMs = config.get('ALERT_WEBHOOK_POLL_MS', { infer: true });
    this.maxPending = config.get('ALERT_WEBHOOK_MAX_PENDING', { infer: true });
    this.keyTtlMs = String(config.get('ALERT_WEBHOOK_KEY_TTL_MS', { infer: true }));
    // Longer than an attempt can take, so a live claimer always finishes before anyone else may claim.
    this.leaseMs = 2 * this.timeoutMs + 5000;
    this.deliveries = new Counter({
      name: 'alert_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome: delivered (2xx), retry (transient failure, tried again later), rejected (redirect or other 4xx: given up), exhausted (ALERT_WEBHOOK_MAX_ATTEMPTS reached), dropped (given up unsent or unfinished: more than ALERT_WEBHOOK_MAX_PENDING pending)',
      labelNames: ['outcome'] as const,
      registers: [metrics.registry],
    });
    if (this.receivers.length > 0) countFromZero(this.deliveries, ['delivered', 'retry', 'rejected', 'exhausted', 'dropped'].map((outcome) => ({ outcome })));
    const pending = (receiver: Receiver) => this.pending(receiver);
    const receivers = this.receivers;
    new Gauge({
      name: 'alert_webhook_pending',
      help: 'Webhook deliveries not yet done (waiting, being attempted or waiting for a retry), per receiver (first 12 hex of the SHA-256 of its URL); shared by all instances',
      labelNames: ['receiver'] as const,
      registers: [metrics.registry],
      async collect() {
        const counts = await Promise.all(receivers.map((r) => pending(r).catch(() => null)));
        // Unknown while Redis cannot be read: no value rather than the last one, which could
        // hold a "pending for 30 min" alert on, or off, through the outage.
        receivers.forEach((r, i) => {
          const n = counts[i];
          if (n !== null) this.set({ receiver: r.id }, n);
          else this.remove({ receiver: r.id });
        });
      },
    });
  }

  onModuleInit(): void {
    if (this.receivers.length === 0) return;
    this.verdictEvents.on((event) => this.enqueue(event));
    this.loops = this.receivers.map((r) => this.run(r));
    this.logger.log(`verdict webhooks to ${this.receivers.map((r) => `${r.label} (${r.id})`).join(', ')}`);
  }

  /** Stops the loops; an attempt in flight is aborted and its claim released (due at once for whoever runs next). */
  async beforeApplicationShutdown(): Promise<void> {
    this.stop.abort();
    for (const wake of this.wakers.values()) wake();
    await Promise.all(this.loops);
  }

  /** Deliveries of `receiver` not done yet (all instances). */
  pending(receiver: Receiver): Promise<number> {
    return this.redis.zcard(this.keys.alertDue(receiver.id));
  }

  get configured(): readonly Receiver[] {
    return this.receivers;
  }

  /** Queues the change for every receiver (the emitter already decided, once, that it happened). */
  private async enqueue(event: VerdictChangedEventDto): Promise<void> {
    await Promise.all(
      this.receivers.map(async (r) => {
        try {
          await this.enqueueFor(r, event);
        } catch (err) {
          // Not lost: the receiver's loops catch up with the last change (catchUp).
          this.logger.warn(`could not queue the ${event.type} webhook ${event.id} for ${r.label}: ${(err as Error).message}`);
        }
      }),
    );
    for (const r of this.receivers) this.wakers.get(r.id)?.();
  }

  private async enqueueFor(receiver: Receiver, event: VerdictChangedEventDto): Promise<boolean> {
    const keys = this.receiverKeys(receiver);
    const since = Date.parse(event.since); // changes are made in as_of order (the transition refuses older evaluations)
    const args = [event.id, JSON.stringify(event), String(this.maxPending), this.keyTtlMs, Number.isFinite(since) ? String(since) : ''];
    const [queued, ...dropped] = (await ENQUEUE.run(this.redis, keys, args)) as [number, ...string[]];
    for (const id of dropped) {
      this.deliveries.inc({ outcome: 'dropped' });
      this.logger.error(`webhook ${id} to ${receiver.label} (${receiver.id}) given up (dropped): more than ALERT_WEBHOOK_MAX_PENDING (${this.maxPending}) pending`);
    }
    return queued === 1;
  }

  /**
   * Queues the last verdict change if nobody did: the instance that made it died before queueing
   * it, or has no receivers configured. Only a change of the last CATCH_UP_MS: a receiver added
   * (or whose URL changed) within that time gets the last change, one added later no old news.
   */
  private async catchUp(receiver: Receiver): Promise<boolean> {
    const change = await this.verdicts.lastChange(CATCH_UP_MS);
    if (!change || !(await this.enqueueFor(receiver, change))) return false;
    this.logger.log(`webhook ${change.id} to ${receiver.label} (${receiver.id}) queued by catch-up (not queued for this receiver yet: the instance that made the change had not, could not, or did not know this receiver)`);
    return true;
  }

  private async run(receiver: Receiver): Promise<void> {
    let failing = false; // while Redis is away, say so once, not on every poll
    while (!this.stop.signal.aborted) {
      let claimed: Claimed | null = null;
      try {
        claimed = await this.claim(receiver);
        const caughtUp = !claimed && (await this.catchUp(receiver));
        if (failing) this.logger.log(`webhook deliveries for ${receiver.label} resume`);
        failing = false;
        if (caughtUp) continue; // due now: claim it at once
      } catch (err) {
        if (!failing) this.logger.warn(`could not claim a webhook delivery for ${receiver.label} (retrying every ${this.pollMs} ms): ${(err as Error).message}`);
        failing = true;
      }
      if (claimed) await this.attempt(receiver, claimed);
      else await this.idle(receiver);
    }
  }

  /** Waits ALERT_WEBHOOK_POLL_MS, or less when this instance queues something or stops. */
  private idle(receiver: Receiver): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(receiver.id);
        resolve();
      };
      const timer = setTimeout(done, this.pollMs);
      this.wakers.set(receiver.id, done);
      if (this.stop.signal.aborted) done();
    });
  }

  private async claim(receiver: Receiver): Promise<Claimed | null> {
    const reply = (await CLAIM.run(this.redis, this.receiverKeys(receiver), [String(this.leaseMs), this.keyTtlMs])) as [string, string, number, number] | null;
    if (!reply) return null;
    const [id, body, attempt, lease] = reply;
    return { id, body, attempt: Number(attempt), lease: Number(lease) };
  }

  private async attempt(receiver: Receiver, d: Claimed): Promise<void> {
    const what = `webhook ${d.id} to ${receiver.label} (${receiver.id}), attempt ${d.attempt} of ${this.maxAttempts}`;
    let finish: { action: 'done' | 'retry'; delayMs: number };
    try {
      await this.http.post(receiver.url, d.body, {
        headers: {
          'Content-Type': 'application/json',
          [SIGNATURE_HEADER]: signature(this.secrets, d.body, Math.floor(Date.now() / 1000)),
          [IDEMPOTENCY_HEADER]: d.id,
        },
        timeoutMs: this.timeoutMs,
        signal: this.stop.signal,
      });
      this.deliveries.inc({ outcome: 'delivered' });
      this.logger.log(`${what}: delivered`);
      finish = { action: 'done', delayMs: 0 };
    } catch (err) {
      if (this.stop.signal.aborted) {
        // Shutting down (Redis is still open): due again at once, for another instance or the
        // next start, rather than after the lease (up to 2 × ALERT_WEBHOOK_TIMEOUT_MS + 5 s).
        // The aborted request may have arrived: a repeat carries the same Idempotency-Key. Not
        // counted: a rolling deploy would otherwise use up attempts the receiver never failed.
        await FINISH.run(this.redis, this.receiverKeys(receiver), [d.id, String(d.lease), 'release', '0']).catch(() => undefined);
        return;
      }
      const message = (err as Error).message; // ours: a status or an error code, never the receiver's body
      if (err instanceof TransientUpstreamError && d.attempt < this.maxAttempts) {
        const delayMs = retryDelay(d.attempt, this.retryBaseMs, this.retryMaxMs, err.retryAfterMs);
        this.deliveries.inc({ outcome: 'retry' });
        this.logger.warn(`${what} failed (${message}); next attempt in ${delayMs} ms`);
        finish = { action: 'retry', delayMs };
      } else {
        const outcome = err instanceof TransientUpstreamError ? 'exhausted' : 'rejected';
        this.deliveries.inc({ outcome });
        this.logger.error(`${what} failed (${message}); given up (${outcome})`);
        finish = { action: 'done', delayMs: 0 };
      }
    }
    try {
      const ok = await FINISH.run(this.redis, this.receiverKeys(receiver), [d.id, String(d.lease), finish.action, String(finish.delayMs)]);
      if (ok !== 1) this.logger.warn(`${what}: its claim had expired (another instance may attempt it again) or it was dropped`);
    } catch (err) {
      // The claim ends with its lease: the delivery is attempted again then (at least once).
      this.logger.warn(`${what}: could not record the result (${(err as Error).message})`);
    }
  }


  private receiverKeys(r: Receiver): string[] {
    return [
      this.keys.alertDue(r.id),
      this.keys.alertBodies(r.id),
      this.keys.alertAttempts(r.id),
      this.keys.alertLastQueued(r.id),
      this.keys.alertQueued(r.id),
      this.keys.alertLastQueuedSince(r.id),
      this.keys.alertQueuedIds(r.id),
    ];
  }
}

/**
 * Delay after failed attempt number `attempt` (1-based): `baseMs` doubled per attempt, jittered
 * between half and all of it, at most `maxMs`; a receiver's Retry-After is honoured within that cap.
 */
export function retryDelay(attempt: number, baseMs: number, maxMs: number, retryAfterMs?: number, random = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  const jittered = Math.round(exp / 2 + random() * (exp / 2));
  return Math.min(maxMs, Math.max(jittered, retryAfterMs ?? 0));
}
