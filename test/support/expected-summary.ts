import type { RawRecord } from './upstream.js';

const HOUR = 3_600_000;

/** Expected summary computed from the raw records, independently of the service's code. */
export function expectedSummary(records: RawRecord[], hours = 3) {
  const ms = records.map((r) => ({ t: Math.trunc((r.timestamp as number) * 1000), p: Number(r.btc_price), s: r.mean as number }));
  const latest = Math.max(...ms.map((r) => r.t));
  const from = Math.floor(latest / HOUR) * HOUR - (hours - 1) * HOUR;
  const buckets = new Map<number, { p: number; s: number; n: number }>();
  for (const r of ms.filter((r) => r.t >= from && r.t <= latest).sort((a, b) => a.t - b.t)) {
    const start = Math.floor(r.t / HOUR) * HOUR;
    const b = buckets.get(start) ?? { p: 0, s: 0, n: 0 };
    b.p += r.p;
    b.s += r.s;
    b.n += 1;
    buckets.set(start, b);
  }
  return [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([start, b]) => ({ time: new Date(start).toISOString(), price: b.p / b.n, sentiment: b.s / b.n }));
}
