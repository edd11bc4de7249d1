import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { LuaScript } from '../redis/lua-script.js';
import { REDIS_CLIENT } from '../redis/redis.constants.js';
import { RedisClient } from '../redis/redis.types.js';

/** A held lease: the key and the token only this holder knows. */
export interface Lease {
  key: string;
  token: string;
  /** Epoch ms when it was acquired (by this process's clock). */
  acquiredAt: number;
}

export type AcquireResult = { lease: Lease } | { lease: null; /** ms until the current holder's lease ends, if known */ retryInMs: number | null };

// Renew and release compare the token and act in one step, so a holder whose lease has already
// expired (and been taken by someone else) can never extend or delete the new holder's lease.
const RENEW = new LuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`);
const RELEASE = new LuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`);

/**
 * Redis lease locks for work that one instance of many should do: `SET key token NX PX ttl`
 * to take, Lua scripts that check the token to renew and release. A holder that dies stops
 * renewing, so its lease ends by itself after at most one TTL.
 */
@Injectable()
export class LeaseLockService {
  /** Who this process is, in every token it writes (so operators and tests can tell holders apart). */
  readonly instanceId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

  constructor(@Inject(REDIS_CLIENT) private readonly redis: RedisClient) {}

  async tryAcquire(key: string, ttlMs: number): Promise<AcquireResult> {
    // A fresh token per acquisition: a late renew/release from an earlier lease of this same
    // process cannot touch a later one.
    const token = `${this.instanceId}:${randomBytes(6).toString('hex')}`;
    const acquiredAt = Date.now();
    if ((await this.redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK') return { lease: { key, token, acquiredAt } };
    const pttl = await this.redis.pttl(key); // a hint for when to try again; -2: just freed, -1: no expiry
    return { lease: null, retryInMs: pttl === -1 ? null : Math.max(pttl, 0) };
  }

  /** Sets the lease to end `ttlMs` from now; false if it is no longer ours. */
  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    return (await RENEW.run(this.redis, [lease.key], [lease.token, String(ttlMs)])) === 1;
  }

  /** Ends the lease now; false if it was no longer ours. */
  async release(lease: Lease): Promise<boolean> {
    return (await RELEASE.run(this.redis, [lease.key], [lease.token])) === 1;
  }

  /**
   * Renews the lease every ttlMs/3 until the returned function is called; `onLost` is called
   * once if a renewal finds the lease gone or taken (or Redis cannot be reached for a whole TTL).
   */
  keepAlive(lease: Lease, ttlMs: number, onLost: (reason: string) => void): () => void {
    let lastRenewed = Date.now();
    let lost = false;
    const timer = setInterval(() => {
      this.renew(lease, ttlMs).then(
        (ok) => {
          if (ok) lastRenewed = Date.now();
          else fail('taken by another holder or expired');
        },
        (err: Error) => {
          if (Date.now() - lastRenewed >= ttlMs) fail(`could not renew for ${ttlMs} ms: ${err.message}`);
        },
      );
    }, Math.max(1, Math.floor(ttlMs / 3)));
    timer.unref?.();
    const fail = (reason: string) => {
      if (lost) return;
      lost = true;
      clearInterval(timer);
      onLost(reason);
    };
    // Stopped means done: a renewal still in flight (the lease may be released meanwhile) must
    // not report it lost.
    return () => {
      lost = true;
      clearInterval(timer);
    };
  }
}
