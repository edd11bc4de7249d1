/** One validated SentiCrypt v1 snapshot, reduced to what we store. */
export interface SentimentRecord {
  /** Epoch ms, `Math.trunc(timestamp * 1000)`. */
  timestamp: number;
  price: number;
  sentiment: number;
}

export interface ParsedPayload {
  records: SentimentRecord[];
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

/** Returns the record, or why it is rejected. */
export function validateRecord(raw: unknown): SentimentRecord | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'record is not an object';
  const r = raw as Record<string, unknown>;
  const ts = finite(r.timestamp, 'timestamp', false);
  if (typeof ts === 'string') return ts;
  const timestamp = Math.trunc(ts * 1000);
  if (timestamp <= 0 || !Number.isSafeInteger(timestamp)) return 'timestamp is out of range';
  const price = finite(r.btc_price, 'btc_price', true);
  if (typeof price === 'string') return price;
  if (price <= 0) return 'btc_price is not positive';
  const sentiment = finite(r.mean, 'mean', false);
  if (typeof sentiment === 'string') return sentiment;
  return { timestamp, price, sentiment };
}

/** Validates a decoded payload; throws if it is not an array (a failed run, nothing stored). */
export function parsePayload(payload: unknown): ParsedPayload {
  if (!Array.isArray(payload)) {
    const kind = payload === null ? 'null' : typeof payload;
    throw new PayloadError(`upstream payload is not a JSON array (got ${kind})`);
  }
  const result: ParsedPayload = { records: [], invalid: 0, invalidReasons: [] };
  payload.forEach((raw, index) => {
    const r = validateRecord(raw);
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
