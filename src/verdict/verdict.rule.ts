/**
 * The verdict, defined once: the API computes it (GET /is-bitcoin-lit, the verdict series, the
 * `verdict.changed` event), the Swagger schema and README describe it, the dashboard shows what
 * the API says.
 */
import type { Direction } from '../summary/dto/summary-response.dto.js';

export const VERDICTS = ['lit', 'cold', 'mixed', 'unknown'] as const;
export type Verdict = (typeof VERDICTS)[number];

/**
 * Price and sentiment both rising: `lit`; both falling: `cold`; any other pair of directions
 * (one of them `flat`, or opposite): `mixed`; a direction missing (no data for that metric in the
 * window): `unknown`.
 */
export function verdictOf(price: Direction | null, sentiment: Direction | null): Verdict {
  if (price === null || sentiment === null) return 'unknown';
  if (price === 'rising' && sentiment === 'rising') return 'lit';
  if (price === 'falling' && sentiment === 'falling') return 'cold';
  return 'mixed';
}

/**
 * How a verdict is stored in the verdict series (a time series holds numbers): lit 1, mixed 0,
 * cold -1, unknown 2 (a code, not a level: the series is read per bucket with `last`).
 */
export const VERDICT_CODE: Readonly<Record<Verdict, number>> = { lit: 1, mixed: 0, cold: -1, unknown: 2 };

export function verdictOfCode(code: number): Verdict | null {
  return VERDICTS.find((v) => VERDICT_CODE[v] === code) ?? null;
}

export function isVerdict(value: unknown): value is Verdict {
  return typeof value === 'string' && (VERDICTS as readonly string[]).includes(value);
}
