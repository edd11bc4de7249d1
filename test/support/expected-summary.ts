import { expect } from '@jest/globals';
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

interface SummaryBody {
  hourly_average_of_averages: Array<{ time: string; price: number; sentiment: number }>;
  price_direction: string;
  sentiment_direction: string;
}

/**
 * Asserts a GET /is-bitcoin-lit body against expectedSummary(records): the same hours, numeric
 * averages equal to the expected ones (to float rounding), and the directions first → last.
 */
export function expectSummaryBody(body: SummaryBody, records: RawRecord[], hours = 3): void {
  const expected = expectedSummary(records, hours);
  const got = body.hourly_average_of_averages;
  expect(got.map((h) => h.time)).toEqual(expected.map((e) => e.time));
  got.forEach((h, i) => {
    expect(typeof h.price).toBe('number');
    expect(h.price).toBeCloseTo(expected[i].price, 8);
    expect(h.sentiment).toBeCloseTo(expected[i].sentiment, 10);
  });
  const dir = (a: number, b: number) => (b > a ? 'rising' : b < a ? 'falling' : 'flat');
  const [first, last] = [expected[0], expected[expected.length - 1]];
  expect(body.price_direction).toBe(dir(first.price, last.price));
  expect(body.sentiment_direction).toBe(dir(first.sentiment, last.sentiment));
}
