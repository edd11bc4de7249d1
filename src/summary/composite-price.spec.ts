import type { SeriesDef } from '../series/series.catalog.js';
import { compositePrice } from './composite-price.js';

const H = 3_600_000;
const NOW = 100 * H + 30 * 60_000; // 100:30
const STALE_MS = 10 * 60_000;
const def = (source: SeriesDef['source']): SeriesDef => ({ metric: 'price', source, unit: 'USD', cadence: 'tick', key: `price:${source}`, retentionMs: 0, labels: {} });
const hours = (...values: number[]) => values.map((value, i) => ({ timestamp: (98 + i) * H, value }));
const at = (ms: number, value = 1) => ({ timestamp: ms, value });

describe('compositePrice', () => {
  it('one venue: its hours and exactly the freshness the summary always had, no new fields', () => {
    const one = compositePrice([{ def: def('coinbase'), latest: at(NOW - H), hours: hours(1, 2) }], NOW, STALE_MS, 2);
    expect(one.hours).toEqual(hours(1, 2));
    expect(JSON.stringify(one.freshness)).toBe(
      JSON.stringify({ source: 'coinbase', unit: 'USD', cadence: 'tick', latest_sample_time: new Date(NOW - H).toISOString(), stale: true }),
    );
  });

  it('several: the median per hour, each venue accounted for; fresh when any venue is', () => {
    const r = compositePrice(
      [
        { def: def('coinbase'), latest: at(NOW - 1000), hours: hours(100, 101, 102) },
        { def: def('kraken'), latest: at(NOW - 2000), hours: hours(100.2, 106, 102.2) },
        { def: def('bitstamp'), latest: null, hours: [] },
      ],
      NOW,
      STALE_MS,
      2,
    );
    // Two venues per hour: their mean, and 101 vs 106 disagree (neither can be called wrong).
    expect(r.hours).toEqual(hours(100.1, 103.5, 102.1));
    expect(r.freshness).toEqual({
      source: 'composite',
      unit: 'USD',
      cadence: 'tick',
      latest_sample_time: new Date(NOW - 1000).toISOString(),
      stale: false,
      venues: [
        expect.objectContaining({ source: 'coinbase', stale: false, hours_used: 3, left_out: null, outlier_hours: 0 }),
        expect.objectContaining({ source: 'kraken', stale: false, hours_used: 3, left_out: null, outlier_hours: 0 }),
        { source: 'bitstamp', unit: 'USD', cadence: 'tick', latest_sample_time: null, stale: true, hours_used: 0, left_out: 'no_data', outlier_hours: 0 },
      ],
      disagreement_hours: 1,
    });
  });

  it('a stale venue is left out of the whole window while another is fresh; with none fresh all count and price is stale', () => {
    const venues = [
      { def: def('coinbase'), latest: at(NOW - 1000), hours: hours(100, 101, 102) },
      { def: def('kraken'), latest: at(NOW - 40 * 60_000), hours: hours(100.4, 101.4) },
      { def: def('bitstamp'), latest: at(NOW - 2000), hours: hours(100.2, 101.2, 102.2) },
    ];
    const some = compositePrice(venues, NOW, STALE_MS, 2);
    expect(some.hours).toEqual(hours(100.1, 101.1, 102.1));
    expect(some.freshness).toMatchObject({ stale: false, venues: [{ hours_used: 3 }, { left_out: 'stale', hours_used: 0 }, { hours_used: 3 }] });

    const none = compositePrice(venues, NOW + H, STALE_MS, 2);
    expect(none.hours).toEqual(hours(100.2, 101.2, 102.1));
    expect(none.freshness).toMatchObject({ stale: true, venues: [{ left_out: null, hours_used: 3 }, { left_out: null, hours_used: 2 }, { left_out: null, hours_used: 3 }] });
  });

  it('the direction compares the venues that have both the first and the last hour', () => {
    // The first seconds of an hour: one venue has polled in it, the others have not yet.
    const early = compositePrice(
      [
        { def: def('coinbase'), latest: at(NOW - 1000), hours: hours(60000, 60000) },
        { def: def('kraken'), latest: at(NOW - 1000), hours: hours(60200, 60200, 60200) },
        { def: def('bitstamp'), latest: at(NOW - 1000), hours: hours(60100, 60100) },
      ],
      NOW,
      STALE_MS,
      2,
    );
    expect(early.hours.map((h) => h.value)).toEqual([60100, 60100, 60200]); // the hours as they are
    expect(early.trend.map((h) => h.value)).toEqual([60200, 60200]); // kraken's own: flat, not rising
    // A venue back from an outage (only in the last hours) makes no trend of its own level.
    const back = compositePrice(
      [
        { def: def('coinbase'), latest: at(NOW - 1000), hours: hours(60000, 60000, 60000) },
        { def: def('kraken'), latest: at(NOW - 1000), hours: hours(60100, 60100, 60100) },
        { def: def('bitstamp'), latest: at(NOW - 1000), hours: [{ timestamp: 100 * H, value: 60200 }] },
      ],
      NOW,
      STALE_MS,
      2,
    );
    expect(back.hours.map((h) => h.value)).toEqual([60050, 60050, 60100]);
    expect(back.trend.map((h) => h.value)).toEqual([60050, 60050]);
  });

  it('an outlier venue is named with its hours', () => {
    const r = compositePrice(
      [
        { def: def('coinbase'), latest: at(NOW), hours: hours(100, 101) },
        { def: def('kraken'), latest: at(NOW), hours: hours(105, 101.1) },
        { def: def('bitstamp'), latest: at(NOW), hours: hours(100.2, 101.2) },
      ],
      NOW,
      STALE_MS,
      2,
    );
    expect(r.hours).toEqual(hours(100.1, 101.1));
    expect(r.freshness).toMatchObject({ venues: [{ left_out: null }, { left_out: 'outlier', hours_used: 1, outlier_hours: 1 }, { left_out: null }] });
  });
});
