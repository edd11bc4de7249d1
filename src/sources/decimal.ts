/**
 * Linear-time parsing of the numbers upstreams send as text (issue #11.2). The old v1 pattern
 * `\d+\.?\d*` let the engine split one digit run two ways, which is quadratic on fifty thousand
 * digits followed by a non-digit. Here the second digit run needs the dot, so each character is
 * matched one way only; and a field is refused by length before any pattern runs.
 */

/** Longest decimal string accepted in any field (a price has ~15 characters). */
export const MAX_DECIMAL_CHARS = 32;

// Unambiguous: digits [. digits] | . digits, then an optional exponent. No blanks, no hex, not empty.
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** True when `s` is a plain decimal number. Linear in `s.length`; callers cap the length first. */
export function isDecimalString(s: string): boolean {
  return DECIMAL.test(s);
}

export interface NumberRules {
  /** Accept a JSON number. */
  numbers?: boolean;
  /** Accept a decimal string (at most MAX_DECIMAL_CHARS characters). */
  strings?: boolean;
}

/** The field's finite number, or why it is rejected (our wording, never the value itself). */
export function numberField(value: unknown, field: string, rules: NumberRules): number | string {
  if (typeof value === 'number' && rules.numbers) return Number.isFinite(value) ? value : `${field} is not finite`;
  if (typeof value === 'string' && rules.strings) {
    if (value.length > MAX_DECIMAL_CHARS) return `${field} is too long (${value.length} characters)`;
    if (!isDecimalString(value)) return `${field} is not a number`;
    const n = Number(value);
    return Number.isFinite(n) ? n : `${field} is not finite`;
  }
  if (value === undefined || value === null) return `${field} is missing`;
  return `${field} has the wrong type (${typeof value})`;
}

/**
 * Highest price accepted (USD). Far above any Bitcoin price, and far below where an hour's sum
 * of samples stops being finite: a feed sending 1.7e308 would otherwise be stored for good
 * (DUPLICATE_POLICY FIRST) and turn every bucket holding it into null.
 */
export const MAX_PRICE = 1e9;

/**
 * Lowest price accepted (USD), for the same reason: stored for good, a feed's 1e-300 or
 * 0.000001 dragged every average it joined (a one-venue hour's from ~60,000 to ~20,000).
 * Bitcoin has not traded under a dollar on these venues since 2011.
 */
export const MIN_PRICE = 1;

/** A price: a finite number from MIN_PRICE up to (not including) MAX_PRICE, or why not. */
export function priceField(value: unknown, field: string, rules: NumberRules): number | string {
  const n = numberField(value, field, rules);
  if (typeof n === 'string') return n;
  if (n <= 0) return `${field} is not positive`;
  if (n < MIN_PRICE) return `${field} is not a plausible price (below ${MIN_PRICE})`;
  return n < MAX_PRICE ? n : `${field} is not a plausible price (${MAX_PRICE} or more)`;
}

/**
 * The earliest time a sample may have: Bitcoin's first block (2009-01-03T18:15:05Z). No price
 * or sentiment of it is older; a feed's `86400` or `1` would otherwise be stored for good in the
 * hourly and daily tiers (a raw series' retention trims only the raw samples).
 */
export const EARLIEST_SAMPLE_MS = Date.UTC(2009, 0, 3, 18, 15, 5);
export const BEFORE_BITCOIN = 'is before Bitcoin existed (2009-01-03)';

/**
 * Epoch seconds given as a JSON integer or a digit string (Bitstamp, alternative.me) → epoch ms,
 * or why not. 1e12 s is year 33658: anything beyond is garbage.
 */
export function epochSecondsField(value: unknown, field: string, rules: NumberRules): number | string {
  let s: number;
  if (typeof value === 'number' && rules.numbers) {
    s = value;
  } else if (typeof value === 'string' && rules.strings) {
    if (!/^\d{1,12}$/.test(value)) return value.length > 12 ? `${field} is too long` : `${field} is not whole seconds`;
    s = Number(value);
  } else {
    return value === undefined || value === null ? `${field} is missing` : `${field} has the wrong type (${typeof value})`;
  }
  if (!Number.isInteger(s) || s <= 0 || s >= 1e12) return `${field} is out of range`;
  return s * 1000 < EARLIEST_SAMPLE_MS ? `${field} ${BEFORE_BITCOIN}` : s * 1000;
}

// ISO-8601 UTC as Coinbase writes it: seconds, up to 9 fractional digits, Z or an offset.
const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * ISO-8601 date-time → epoch ms (fraction beyond ms truncated), or why not. A date that is not in
 * the calendar is refused: Date.parse rolls `02-30` over into March and reads `24:00` as the next
 * day.
 */
export function isoTimeField(value: unknown, field: string): number | string {
  if (typeof value !== 'string') return value === undefined || value === null ? `${field} is missing` : `${field} has the wrong type (${typeof value})`;
  const m = value.length > 40 ? null : ISO.exec(value);
  if (!m) return `${field} is not an ISO-8601 time`;
  const [year, month, day, hour] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate() || hour > 23) {
    return `${field} is not a valid time`;
  }
  // Date.parse reads at most milliseconds; cut the fraction to 3 digits so every engine agrees.
  const ms = Date.parse(value.replace(/(\.\d{3})\d+/, '$1'));
  if (!Number.isFinite(ms)) return `${field} is not a valid time`;
  return ms < EARLIEST_SAMPLE_MS ? `${field} ${BEFORE_BITCOIN}` : ms;
}

/** `YYYY-MM-DD` → epoch ms of 00:00 UTC that day, or why not (real calendar dates only). */
export function utcDayField(value: unknown, field: string): number | string {
  if (typeof value !== 'string') return value === undefined || value === null ? `${field} is missing` : `${field} has the wrong type (${typeof value})`;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!m) return `${field} is not a YYYY-MM-DD date`;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = Date.UTC(y, mo - 1, d);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) {
    return `${field} is not a valid date`;
  }
  // The day Bitcoin began counts: its level is that day's.
  return ms + 86_400_000 <= EARLIEST_SAMPLE_MS ? `${field} ${BEFORE_BITCOIN}` : ms;
}
