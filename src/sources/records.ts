/**
 * Shared bookkeeping of a provider's records: shape checks with limits sized to the real
 * payloads, validation that yields to the event loop, and the rule that a payload that is
 * mostly garbage fails the run (issue #11.3).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { MetricName, SourceBatch } from './source.types.js';
import type { Sample } from '../timeseries/timeseries.types.js';
import { PayloadError } from './source.errors.js';

/** Validation hands the event loop back after this many records, so health checks stay prompt. */
export const YIELD_EVERY = 500;

/** Returned by a record check for a record older than what is stored: counted, not validated further. */
export const SKIP = Symbol('skip');

export interface Tally<T> {
  values: T[];
  fetched: number;
  skipped: number;
  invalid: number;
  invalidReasons: string[];
}

export function emptyTally<T>(): Tally<T> {
  return { values: [], fetched: 0, skipped: 0, invalid: 0, invalidReasons: [] };
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** The payload as an array of at most `maxRecords` records, or a PayloadError. */
export function arrayOf(payload: unknown, maxRecords: number, what = 'upstream payload'): unknown[] {
  if (!Array.isArray(payload)) throw new PayloadError(`${what} is not a JSON array (got ${kindOf(payload)})`);
  if (payload.length > maxRecords) {
    throw new PayloadError(`${what} has ${payload.length} records, more than the ${maxRecords} this source ever sends`);
  }
  return payload;
}

/** The payload as a plain JSON object, or a PayloadError. */
export function objectOf(payload: unknown, what = 'upstream payload'): Record<string, unknown> {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new PayloadError(`${what} is not a JSON object (got ${kindOf(payload)})`);
  }
  return payload as Record<string, unknown>;
}

/**
 * Runs `check` over the records (adding to `into`), yielding to the event loop every
 * YIELD_EVERY records. `check` returns the value, SKIP, or the reason the record is invalid.
 * `offset` numbers the records of a later page after those of the earlier ones.
 */
export async function tally<T>(
  records: readonly unknown[],
  check: (raw: unknown, index: number) => T | string | typeof SKIP,
  into: Tally<T> = emptyTally<T>(),
  offset = 0,
): Promise<Tally<T>> {
  for (let i = 0; i < records.length; i++) {
    if (i > 0 && i % YIELD_EVERY === 0) await yieldToLoop();
    into.fetched++;
    const r = check(records[i], i);
    if (r === SKIP) {
      into.skipped++;
    } else if (typeof r === 'string') {
      into.invalid++;
      if (into.invalidReasons.length < 5) into.invalidReasons.push(`#${offset + i}: ${r}`);
    } else {
      into.values.push(r);
    }
  }
  return into;
}

/**
 * A payload that is mostly garbage fails the run: some record is invalid and there are more
 * invalid records than usable ones (valid, or skipped as already stored). A few bad records
 * among good ones are only reported; a payload of nothing but junk is not a success.
 */
export function assertMostlyValid(t: Pick<Tally<unknown>, 'values' | 'fetched' | 'skipped' | 'invalid' | 'invalidReasons'>): void {
  const usable = t.values.length + t.skipped;
  if (t.invalid > 0 && t.invalid > usable) {
    throw new PayloadError(
      `upstream payload is mostly invalid: ${t.invalid} of ${t.fetched} records rejected (${t.invalidReasons.slice(0, 3).join('; ')})`,
    );
  }
}

/** Samples oldest first (a stable sort: equal timestamps keep the payload's order). */
export function sortedSamples(samples: Iterable<Sample>): Sample[] {
  return [...samples].sort((a, b) => a.timestamp - b.timestamp);
}

/** Samples oldest first, one per timestamp (the first seen wins, as DUPLICATE_POLICY FIRST would). */
export function uniqueSortedSamples(samples: Iterable<Sample>): Sample[] {
  const byTime = new Map<number, Sample>();
  for (const s of samples) if (!byTime.has(s.timestamp)) byTime.set(s.timestamp, s);
  return [...byTime.values()].sort((a, b) => a.timestamp - b.timestamp);
}

const STEP_NAMES: Record<number, string> = { 60_000: 'a minute', 3_600_000: 'an hour', 86_400_000: 'a UTC day' };

/**
 * `timestamp` when it starts a step of `stepMs` (a candle's minute or hour, a daily index's UTC
 * day), or why not: a row between steps is not the series the upstream documents, and stored
 * (DUPLICATE_POLICY FIRST) it would stay in every average of its hour.
 */
export function onStep(timestamp: number, stepMs: number, field: string): number | string {
  return timestamp % stepMs === 0 ? timestamp : `${field} is not at the start of ${STEP_NAMES[stepMs] ?? `a ${stepMs} ms step`}`;
}

/**
 * A batch of one metric from a tally of samples. Records that repeat a time with the same value
 * are one sample; records that give one time different values are all invalid: which is right
 * cannot be told, and the first, kept for good, could be the wrong one.
 */
export function batchOf(metric: MetricName, t: Tally<Sample>, attempts: number): SourceBatch {
  const values = new Map<number, number | null>();
  for (const s of t.values) {
    const seen = values.get(s.timestamp);
    values.set(s.timestamp, seen === undefined || seen === s.value ? s.value : null);
  }
  const kept = t.values.filter((s) => values.get(s.timestamp) !== null);
  const conflicting = t.values.length - kept.length;
  const reasons = [...t.invalidReasons];
  for (const [timestamp, value] of values) {
    if (value === null && reasons.length < 5) reasons.push(`records at ${new Date(timestamp).toISOString()} give it different values`);
  }
  return {
    samples: { [metric]: uniqueSortedSamples(kept) },
    fetched: t.fetched,
    skipped: t.skipped,
    invalid: t.invalid + conflicting,
    invalidReasons: reasons,
    attempts,
  };
}

/** Keeps the samples with from <= timestamp <= to; the others are counted as skipped. */
export function keepRange(t: Tally<Sample>, from: number, to: number): void {
  const kept = t.values.filter((s) => s.timestamp >= from && s.timestamp <= to);
  t.skipped += t.values.length - kept.length;
  t.values = kept;
}
