/**
 * The summary's price from one or several venues, and what `metrics.price` says about it. Pure:
 * unit-tested on its own (composite-price.spec.ts); the bucket-level rule is src/series/composite.ts.
 */
import { compositeSeries } from '../series/composite.js';
import type { SeriesDef } from '../series/series.catalog.js';
import type { Sample } from '../timeseries/timeseries.types.js';
import type { MetricFreshnessDto, PriceFreshnessDto, PriceVenueDto } from './dto/summary-response.dto.js';

/** One price venue as the summary sees it: its series, newest sample and hourly means in the window. */
export interface VenueHours {
  def: SeriesDef;
  latest: Sample | null;
  hours: Sample[];
}

/** Where a metric comes from and how fresh it is, as the summary has always said it. */
export function freshnessOf(def: SeriesDef, latest: Sample | null, now: number, staleAfterMs: number): MetricFreshnessDto {
  return {
    source: def.source,
    unit: def.unit,
    cadence: def.cadence,
    latest_sample_time: latest ? new Date(latest.timestamp).toISOString() : null,
    stale: latest === null || now - latest.timestamp > staleAfterMs,
  };
}

/**
 * The summary's hourly price and `metrics.price`. One venue: its hourly means and its freshness,
 * exactly as before composites existed. Several: per hour, the median of the venues' hourly
 * means (outliers left out, see combineVenues). A stale venue (newest sample older than
 * PRICE_STALE_AFTER_MS) is left out of the whole window while another venue is fresh, so the
 * venues behind the first and last hour (the direction) are the same live ones; when none is
 * fresh, every venue with data is used and the price is flagged stale, as a single stale source
 * always was. `stale` is true only when no venue is fresh.
 */
export function compositePrice(
  venues: readonly VenueHours[],
  now: number,
  staleAfterMs: number,
  outlierPct: number,
): { hours: Sample[]; trend: Sample[]; freshness: MetricFreshnessDto | PriceFreshnessDto } {
  if (venues.length === 1) {
    const [only] = venues;
    return { hours: only.hours, trend: only.hours, freshness: freshnessOf(only.def, only.latest, now, staleAfterMs) };
  }
  const fresh = venues.map((v) => v.latest !== null && now - v.latest.timestamp <= staleAfterMs);
  const anyFresh = fresh.some(Boolean);
  const candidates = venues.filter((_, i) => fresh[i] || !anyFresh);
  const composite = compositeSeries(
    candidates.map((v) => ({ source: v.def.source, samples: v.hours })),
    outlierPct,
  );
  const details = venues.map((v, i): PriceVenueDto => {
    const hoursUsed = composite.used[v.def.source] ?? 0;
    const outlierHours = composite.outliers[v.def.source] ?? 0;
    let leftOut: PriceVenueDto['left_out'] = null;
    if (v.latest === null || (v.hours.length === 0 && (fresh[i] || !anyFresh))) leftOut = 'no_data';
    else if (anyFresh && !fresh[i]) leftOut = 'stale';
    else if (outlierHours > 0) leftOut = 'outlier';
    return {
      ...freshnessOf(v.def, v.latest, now, staleAfterMs),
      hours_used: hoursUsed,
      left_out: leftOut,
      outlier_hours: outlierHours,
    };
  });
  const newest = venues.reduce<Sample | null>((a, v) => (v.latest && (!a || v.latest.timestamp > a.timestamp) ? v.latest : a), null);
  const [first] = venues;
  return {
    hours: composite.samples,
    trend: trendOf(candidates, composite.samples, outlierPct),
    freshness: {
      source: COMPOSITE_SOURCE,
      unit: first.def.unit,
      cadence: first.def.cadence,
      latest_sample_time: newest ? new Date(newest.timestamp).toISOString() : null,
      stale: !anyFresh,
      venues: details,
      disagreement_hours: composite.disagreements,
    },
  };
}

/** `metrics.price.source` when several venues make the price. */
export const COMPOSITE_SOURCE = 'composite';

/**
 * What the price direction compares: the composite of the venues that have both the window's
 * first and last hour. Each poll round's venues answer one after the other, so in the first
 * seconds of an hour that hour held one venue's mean against the others' median in the first
 * hour: the direction (and the verdict, announced to every client and webhook) flipped for a few
 * seconds at every top of the hour, and a venue back from an outage made a trend of its own
 * level. When no venue has both hours, the composite itself.
 */
function trendOf(candidates: readonly VenueHours[], hours: Sample[], outlierPct: number): Sample[] {
  if (hours.length < 2) return hours;
  const [first, last] = [hours[0].timestamp, hours[hours.length - 1].timestamp];
  const has = (v: VenueHours, t: number) => v.hours.some((h) => h.timestamp === t && Number.isFinite(h.value));
  const steady = candidates.filter((v) => has(v, first) && has(v, last));
  if (steady.length === 0 || steady.length === candidates.length) return hours;
  const ends = steady.map((v) => ({ source: v.def.source, samples: v.hours.filter((h) => h.timestamp === first || h.timestamp === last) }));
  return compositeSeries(ends, outlierPct).samples;
}
