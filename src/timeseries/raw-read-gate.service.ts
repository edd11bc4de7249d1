import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { RetryLaterException } from '../common/errors.js';
import { Env } from '../config/env.validation.js';

/** A raw read spanning more than this is a long one (a day of 30 s samples: ~3k per series). */
export const LONG_RAW_READ_MS = 24 * 3600 * 1000;
/** Long reads that may wait for their turn, per slot, before more are refused. */
const WAITING_PER_SLOT = 16;

/**
 * Lets at most SERIES_RAW_READS long raw reads (history computed from raw samples over more than
 * LONG_RAW_READ_MS) run at once in this instance; the others wait in order. On plain Redis each
 * such read scans every sample in range (script calls of at most SCAN_BUDGET samples, tens of
 * ms in all for a month), and every command of this instance shares one connection: thirty of
 * them sent together queued seconds of work ahead of the health check, the cache and ingest, so
 * their commands timed out and the whole service answered 503. A burst larger than the queue
 * is refused at once (503, Retry-After).
 */
@Injectable()
export class RawReadGate {
  private readonly slots: number;
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(config: ConfigService<Env, true>) {
    this.slots = config.get('SERIES_RAW_READS', { infer: true });
  }

  /** `read()`'s result, run now or once a slot is free; a read of at most LONG_RAW_READ_MS runs at once. */
  async run<T>(spanMs: number, read: () => Promise<T>): Promise<T> {
    if (spanMs <= LONG_RAW_READ_MS) return read();
    if (this.running < this.slots) {
      this.running++;
    } else {
      if (this.waiting.length >= this.slots * WAITING_PER_SLOT) {
        throw new RetryLaterException('Too many long history queries are running; retry shortly', 1);
      }
      // The slot is handed over by the read that frees it (running stays the same).
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await read();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
