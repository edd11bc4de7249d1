import { combineVenues, compositeSeries, median } from './composite.js';

const H = 3_600_000;
const v = (source: string, value: number) => ({ source, value });

describe('median', () => {
  it('is the middle value, or the mean of the two middle ones; the input is left as it was', () => {
    const odd = [3, 1, 2];
    expect(median(odd)).toBe(2);
    expect(odd).toEqual([3, 1, 2]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(() => median([])).toThrow(RangeError);
  });
});

describe('combineVenues', () => {
  it('three venues that agree: the median, every venue used', () => {
    expect(combineVenues([v('coinbase', 100), v('kraken', 100.3), v('bitstamp', 99.9)], 2)).toEqual({
      value: 100,
      used: ['coinbase', 'kraken', 'bitstamp'],
      outliers: [],
      disagreement: false,
    });
  });

  it('one venue 5 % off is left out; the two good ones are not dragged out by it (their mean)', () => {
    // Against the median of the others, 100 and 100.1 are each ~2.4 % from (their partner + 105)/2:
    // checked all at once, every venue would go. The farthest goes first, then the rest agree.
    expect(combineVenues([v('coinbase', 100), v('kraken', 105), v('bitstamp', 100.1)], 2)).toEqual({
      value: 100.05,
      used: ['coinbase', 'bitstamp'],
      outliers: ['kraken'],
      disagreement: false,
    });
  });

  it('the threshold is exclusive and in percent', () => {
    // 102 is exactly 2 % from 100 (the median of the others): kept.
    expect(combineVenues([v('a', 100), v('b', 100), v('c', 102)], 2)?.outliers).toEqual([]);
    expect(combineVenues([v('a', 100), v('b', 100), v('c', 102.01)], 2)?.outliers).toEqual(['c']);
    expect(combineVenues([v('a', 100), v('b', 100), v('c', 100.6)], 0.5)?.outliers).toEqual(['c']);
  });

  it('two venues: their mean; more than the threshold apart is a disagreement, neither is left out', () => {
    expect(combineVenues([v('a', 100), v('b', 101)], 2)).toEqual({ value: 100.5, used: ['a', 'b'], outliers: [], disagreement: false });
    expect(combineVenues([v('a', 100), v('b', 105)], 2)).toEqual({ value: 102.5, used: ['a', 'b'], outliers: [], disagreement: true });
  });

  it('three venues all far apart: the farthest goes, the two left disagree', () => {
    expect(combineVenues([v('a', 100), v('b', 106), v('c', 112.5)], 2)).toEqual({
      value: 103,
      used: ['a', 'b'],
      outliers: ['c'],
      disagreement: true,
    });
  });

  it('a value that is not a finite number counts as no value (whatever the venue order)', () => {
    for (const order of [[NaN, 100, 102], [100, NaN, 102], [100, 102, NaN]]) {
      const bucket = combineVenues(order.map((value, i) => ({ source: `v${i}`, value })), 5);
      expect(bucket?.value).toBe(101);
    }
    expect(combineVenues([{ source: 'a', value: NaN }], 5)).toBeNull();
  });

  it('one venue: its value; none: null', () => {
    expect(combineVenues([v('kraken', 123.45)], 2)).toEqual({ value: 123.45, used: ['kraken'], outliers: [], disagreement: false });
    expect(combineVenues([], 2)).toBeNull();
  });
});

describe('compositeSeries', () => {
  const coinbase = { source: 'coinbase', samples: [{ timestamp: 0, value: 100 }, { timestamp: H, value: 101 }, { timestamp: 2 * H, value: 102 }] };
  const kraken = { source: 'kraken', samples: [{ timestamp: H, value: 106 }, { timestamp: 2 * H, value: 102.2 }] };
  const bitstamp = { source: 'bitstamp', samples: [{ timestamp: 0, value: 100.4 }, { timestamp: H, value: 101.2 }, { timestamp: 2 * H, value: 101.8 }] };

  it('combines bucket by bucket, a venue missing from a bucket is not in it, and counts who was used and left out', () => {
    expect(compositeSeries([coinbase, kraken, bitstamp], 2)).toEqual({
      samples: [
        { timestamp: 0, value: 100.2 },
        { timestamp: H, value: 101.1 },
        { timestamp: 2 * H, value: 102 },
      ],
      used: { coinbase: 3, kraken: 1, bitstamp: 3 },
      outliers: { coinbase: 0, kraken: 1, bitstamp: 0 },
      disagreements: 0,
    });
  });

  it('leaves out a bucket where no venue has a number (nan from a backend), instead of failing', () => {
    const nan = (source: string) => ({ source, samples: [{ timestamp: 0, value: NaN }, { timestamp: 3_600_000, value: 2 }] });
    expect(compositeSeries([nan('a'), nan('b')], 5, 'twa').samples).toEqual([{ timestamp: 3_600_000, value: 2 }]);
  });

  it('one venue is that venue, unchanged', () => {
    expect(compositeSeries([coinbase], 2).samples).toEqual(coinbase.samples);
  });

  it('the outlier rule applies to price levels only: counts and sums take the plain median', () => {
    const counts = [
      { source: 'a', samples: [{ timestamp: 0, value: 60 }] },
      { source: 'b', samples: [{ timestamp: 0, value: 1 }] },
      { source: 'c', samples: [{ timestamp: 0, value: 59 }] },
    ];
    expect(compositeSeries(counts, 2, 'count')).toMatchObject({ samples: [{ timestamp: 0, value: 59 }], outliers: { a: 0, b: 0, c: 0 } });
    expect(compositeSeries(counts, 2, 'max')).toMatchObject({ samples: [{ timestamp: 0, value: 59.5 }], outliers: { a: 0, b: 1, c: 0 } });
  });
});
