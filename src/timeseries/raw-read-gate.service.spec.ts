import type { ConfigService } from '@nestjs/config';
import { RetryLaterException } from '../common/errors.js';
import type { Env } from '../config/env.validation.js';
import { LONG_RAW_READ_MS, RawReadGate } from './raw-read-gate.service.js';

const gateOf = (slots: number) => new RawReadGate({ get: () => slots } as unknown as ConfigService<Env, true>);
const LONG = LONG_RAW_READ_MS + 1;

/** A read that finishes when told to. */
function pending(): { read: () => Promise<string>; started: boolean; finish: (v: string) => void } {
  const r = { started: false, finish: (_v: string) => undefined as void, read: () => Promise.resolve('') };
  r.read = () => {
    r.started = true;
    return new Promise<string>((resolve) => (r.finish = resolve));
  };
  return r;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('RawReadGate', () => {
  it('runs SERIES_RAW_READS long reads at once and the next ones in order as slots free up', async () => {
    const gate = gateOf(2);
    const reads = [pending(), pending(), pending(), pending()];
    const results = reads.map((r) => gate.run(LONG, r.read));
    await tick();
    expect(reads.map((r) => r.started)).toEqual([true, true, false, false]);
    reads[1].finish('b');
    await expect(results[1]).resolves.toBe('b');
    await tick();
    expect(reads.map((r) => r.started)).toEqual([true, true, true, false]);
    reads[0].finish('a');
    reads[2].finish('c');
    await tick();
    expect(reads[3].started).toBe(true);
    reads[3].finish('d');
    await expect(Promise.all(results)).resolves.toEqual(['a', 'b', 'c', 'd']);
  });

  it('frees the slot of a read that fails', async () => {
    const gate = gateOf(1);
    await expect(gate.run(LONG, () => Promise.reject(new Error('NOSCRIPT')))).rejects.toThrow('NOSCRIPT');
    await expect(gate.run(LONG, () => Promise.resolve('next'))).resolves.toBe('next');
  });

  it('a read of at most a day neither waits nor takes a slot', async () => {
    const gate = gateOf(1);
    const long = pending();
    void gate.run(LONG, long.read);
    await expect(gate.run(LONG_RAW_READ_MS, () => Promise.resolve('short'))).resolves.toBe('short');
    long.finish('');
  });

  it('refuses a long read with a 503 and Retry-After once 16 per slot are waiting', async () => {
    const gate = gateOf(1);
    const reads = Array.from({ length: 17 }, () => pending());
    reads.forEach((r) => void gate.run(LONG, r.read));
    const refused = gate.run(LONG, () => Promise.resolve('never'));
    await expect(refused).rejects.toBeInstanceOf(RetryLaterException);
    await expect(refused).rejects.toMatchObject({ retryAfterSeconds: 1, message: expect.stringMatching(/retry shortly/) });
    // Once one finishes, there is room to wait again.
    reads[0].finish('');
    await tick();
    expect(reads[1].started).toBe(true);
    const waits = gate.run(LONG, () => Promise.resolve('later'));
    for (const r of reads.slice(1)) {
      r.finish('');
      await tick();
    }
    await expect(waits).resolves.toBe('later');
  });
});
