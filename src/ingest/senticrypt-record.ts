/** One validated SentiCrypt v1 snapshot, reduced to what we store. */
export interface SentimentRecord {
  /** Epoch ms, `Math.trunc(timestamp * 1000)`. */
  timestamp: number;
  price: number;
  sentiment: number;
}

export interface ParsedPayload {
  /** The valid records to send (newer than `newerThan`, when given). */
  records: SentimentRecord[];
  /** Records with a valid timestamp not newer than `newerThan`: not sent, not checked further. */
  skipped: number;
  /** Records that failed validation, never stored. */
  invalid: number;
  /** A few reasons, for the report and the log. */
  invalidReasons: string[];
}

// A plain decimal number: no hex, no blanks, no empty string (Number('') === 0).
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function finite(value: unknown, field: string, allowString: boolean): number | string {
  if (typeof value === 'number') return Number.isFinite(value) ? value : `${field} is not finite`;
  if (allowString && typeof value === 'string') {
    if (!DECIMAL.test(value)) return `${field} is not a number`;
    const n = Number(value);
    return Number.isFinite(n) ? n : `${field} is not finite`;
  }
  if (value === undefined || value === null) return `${field} is missing`;
  return `${field} has the wrong type (${typeof value})`;
}

/** The record's epoch ms timestamp, or why it is rejected. */
function timestampOf(raw: unknown): number | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'record is not an object';
  const ts = finite((raw as Record<string, unknown>).timestamp, 'timestamp', false);
  if (typeof ts === 'string') return ts;
  const timestamp = Math.trunc(ts * 1000);
  if (timestamp <= 0 || !Number.isSafeInteger(timestamp)) return 'timestamp is out of range';
  return timestamp;
}

/** Returns the record, or why it is rejected. */
export function validateRecord(raw: unknown): SentimentRecord | string {
  const timestamp = timestampOf(raw);
  return typeof timestamp === 'string' ? timestamp : validateFields(raw as Record<string, unknown>, timestamp);
}

function validateFields(r: Record<string, unknown>, timestamp: number): SentimentRecord | string {
  const price = finite(r.btc_price, 'btc_price', true);
  if (typeof price === 'string') return price;
  if (price <= 0) return 'btc_price is not positive';
  const sentiment = finite(r.mean, 'mean', false);
  if (typeof sentiment === 'string') return sentiment;
  return { timestamp, price, sentiment };
}

/**
 * Validates a decoded payload; throws if it is not an array (a failed run, nothing stored).
 * Records with a valid timestamp not newer than `newerThan` (epoch ms: what is stored already)
 * are only counted as skipped. The feed repeats the last 24 h on every poll, so a bad record
 * is reported (and counted in metrics, and logged) while it could still be stored, not again
 * on every poll for a day; and the records already stored are not validated again.
 */
export function parsePayload(payload: unknown, newerThan: number | null = null): ParsedPayload {
  if (!Array.isArray(payload)) {
    const kind = payload === null ? 'null' : typeof payload;
    throw new PayloadError(`upstream payload is not a JSON array (got ${kind})`);
  }
  const result: ParsedPayload = { records: [], skipped: 0, invalid: 0, invalidReasons: [] };
  payload.forEach((raw, index) => {
    const timestamp = timestampOf(raw);
    if (typeof timestamp === 'number' && newerThan !== null && timestamp <= newerThan) {
      result.skipped++;
      return;
    }
    const r = typeof timestamp === 'string' ? timestamp : validateFields(raw as Record<string, unknown>, timestamp);
    if (typeof r === 'string') {
      result.invalid++;
      if (result.invalidReasons.length < 5) result.invalidReasons.push(`#${index}: ${r}`);
    } else {
      result.records.push(r);
    }
  });
  return result;
}

/** The upstream answered, but not with something we can use. */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';
}
