import { ConfigService } from '@nestjs/config';
import { Env } from '../config/env.validation.js';
import { TimeseriesService } from './timeseries.service.js';
import { AddOutcome, Sample, TimeseriesBackend } from './timeseries.types.js';

const config = (chunk: number) => ({ get: () => chunk }) as unknown as ConfigService<Env, true>;
const samples = (n: number): Sample[] => Array.from({ length: n }, (_, i) => ({ timestamp: i, value: i }));

/** A backend whose replies arrive in reverse order of the calls (later chunks answer first). */
function backend(outcome: (s: Sample) => AddOutcome, failOn?: number) {
  const calls: number[][] = [];
  const impl = {
    kind: 'portable' as const,
    addMany: (_key: string, chunk: Sample[]) => {
      const n = calls.push(chunk.map((s) => s.timestamp));
      return new Promise<AddOutcome[]>((resolve, reject) =>
        setTimeout(() => (n === failOn ? reject(new Error(`chunk ${n} failed`)) : resolve(chunk.map(outcome))), 50 - n * 5),
      );
    },
  };
  return { calls, impl: impl as unknown as TimeseriesBackend };
}

describe('TimeseriesService.add', () => {
  it('sends every chunk once, in order, and counts each sample whatever order the replies come in', async () => {
    const b = backend((s) => (s.timestamp % 10 === 0 ? { status: 'duplicate' } : s.timestamp === 7 ? { status: 'rejected', reason: 'TSDB: x' } : { status: 'stored' }));
    const report = await new TimeseriesService(b.impl, config(3)).add('k', samples(20));
    expect(b.calls).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 14], [15, 16, 17], [18, 19]]);
    expect(report).toEqual({ stored: 17, duplicates: 2, rejected: 1, errors: ['TSDB: x'] });
  });

  it('fails when a chunk fails, without leaving rejections of other chunks unhandled', async () => {
    const b = backend(() => ({ status: 'stored' }), 2);
    await expect(new TimeseriesService(b.impl, config(2)).add('k', samples(12))).rejects.toThrow('chunk 2 failed');
  });
});
