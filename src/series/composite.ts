/**
 * The composite price: several venues' series combined bucket by bucket, the way exchange
 * reference prices are (a median, outliers left out, carrying on when a venue is missing). Pure
 * functions, no I/O: the summary and the history both use them, so `GET /series/price` with
 * `bucket=1h&aggregation=avg` gives the summary's hourly prices (the summary also leaves out stale
 * venues).
 */
import type { Aggregation, Sample } from '../timeseries/timeseries.types.js';

/** One venue's value in one bucket. */
export interface VenueValue {
  source: string;
  value: number;
}

/** How one bucket's composite was made. */
export interface CompositeBucket {
  value: number;
  /** Venues whose value is in the median, in the order given. */
  used: string[];
  /** Venues left out as more than the threshold from the median of the others. */
  outliers: string[];
  /**
   * Two venues (left) more than the threshold apart: no majority says which is wrong, so both
   * are kept and the bucket is their mean; counted so it is visible.
   */
  disagreement: boolean;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Relative distance of `value` from `reference`, in percent. */
function distancePct(value: number, reference: number): number {
  if (reference === 0) return value === 0 ? 0 : Infinity;
  return (Math.abs(value - reference) / Math.abs(reference)) * 100;
}

/**
 * One bucket's composite: the median of the venues' values. While three or more venues are
 * left, the one farthest from the median of them all (a robust centre: a single bad venue cannot
 * move it) is tested against the median of the OTHER venues: more than `outlierPct` percent from
 * it, it is left out and the rest are checked again. Testing every venue against its others at
 * once would not do: with 100, 100.1 and 105, the good ones are each ~2.4 % from the others'
 * median (pulled up by 105) and every venue would go. Ties go to the first venue given. Two
 * venues check each other and nothing can tell which one is wrong: both stay (the mean), flagged
 * as a disagreement. Null when no venue has a value (a value that is not a finite number counts as none).
 */
export function combineVenues(given: readonly VenueValue[], outlierPct: number): CompositeBucket | null {
  // A value that is not a number (nan from a backend) would make every comparison below false.
  const values = given.filter((v) => Number.isFinite(v.value));
  if (values.length === 0) return null;
  let kept = [...values];
  const outliers: string[] = [];
  while (kept.length >= 3) {
    const centre = median(kept.map((v) => v.value));
    let worst = 0;
    kept.forEach((v, i) => {
      if (Math.abs(v.value - centre) > Math.abs(kept[worst].value - centre)) worst = i;
    });
    const others = median(kept.filter((_, i) => i !== worst).map((v) => v.value));
    if (distancePct(kept[worst].value, others) <= outlierPct) break;
    outliers.push(kept[worst].source);
    kept = kept.filter((_, i) => i !== worst);
  }
  const disagreement = kept.length === 2 && distancePct(kept[0].value, kept[1].value) > outlierPct;
  return {
    value: median(kept.map((v) => v.value)),
    used: values.filter((v) => kept.includes(v)).map((v) => v.source),
    outliers: values.filter((v) => outliers.includes(v.source)).map((v) => v.source),
    disagreement,
  };
}

/** One venue's series (oldest first, one sample per bucket, e.g. hourly means). */
export interface VenueSeries {
  source: string;
  samples: readonly Sample[];
}

export interface CompositeSeries {
  /** One sample per bucket where any venue has a value, oldest first. */
  samples: Sample[];
  /** Per venue: buckets it is in the median of. */
  used: Record<string, number>;
  /** Per venue: buckets it was left out of as an outlier. */
  outliers: Record<string, number>;
  /** Buckets whose two venues disagreed by more than the threshold. */
  disagreements: number;
}

/**
 * Aggregations whose value is a price level: the outlier rule applies. The others (sum, count,
 * range, var, std) are not prices, a percentage distance between venues' means nothing there:
 * the composite is the plain median across venues.
 */
const LEVELS: ReadonlySet<Aggregation> = new Set<Aggregation>(['avg', 'min', 'max', 'first', 'last', 'twa']);

/**
 * Venues' bucketed series combined bucket by bucket (combineVenues); venues with no value in a
 * bucket simply are not in it. `aggregation` says what the buckets hold (see LEVELS).
 */
export function compositeSeries(venues: readonly VenueSeries[], outlierPct: number, aggregation: Aggregation = 'avg'): CompositeSeries {
  const pct = LEVELS.has(aggregation) ? outlierPct : Infinity;
  const byTime = new Map<number, VenueValue[]>();
  for (const venue of venues) {
    for (const s of venue.samples) {
      const bucket = byTime.get(s.timestamp) ?? [];
      bucket.push({ source: venue.source, value: s.value });
      byTime.set(s.timestamp, bucket);
    }
  }
  const count = () => Object.fromEntries(venues.map((v) => [v.source, 0])) as Record<string, number>;
  const result: CompositeSeries = { samples: [], used: count(), outliers: count(), disagreements: 0 };
  for (const [timestamp, values] of [...byTime.entries()].sort(([a], [b]) => a - b)) {
    const bucket = combineVenues(values, pct);
    if (!bucket) continue; // no venue has a number in it
    result.samples.push({ timestamp, value: bucket.value });
    for (const s of bucket.used) result.used[s]++;
    for (const s of bucket.outliers) result.outliers[s]++;
    if (bucket.disagreement) result.disagreements++;
  }
  return result;
}
