import { foldPartials, maxBuckets, parseBucket, parseTime, planQuery, rawSpanProblem, resolveWindow, type Partials } from './history-query.js';

const H = 3_600_000;
const D = 24 * H;

describe('parseTime', () => {
  it('reads epoch ms, ISO-8601 with a zone, and dates as UTC midnight', () => {
    expect(parseTime('1625592626345', 'from')).toBe(1625592626345);
    expect(parseTime('2021-07-07T12:00:00Z', 'from')).toBe(Date.UTC(2021, 6, 7, 12));
    expect(parseTime('2021-07-07T12:00:00.5+02:00', 'from')).toBe(Date.UTC(2021, 6, 7, 10, 0, 0, 500));
    expect(parseTime('2021-07-07', 'to')).toBe(Date.UTC(2021, 6, 7));
  });

  it('refuses local times, words and dates that do not exist, naming the field', () => {
    expect(() => parseTime('2021-07-07T12:00:00', 'from')).toThrow(/^from must be an ISO-8601/);
    expect(() => parseTime('now', 'to')).toThrow(/^to must be/);
    expect(() => parseTime('2021-02-30', 'from')).toThrow('from is not a valid time: 2021-02-30');
    expect(() => parseTime('2021-13-01T00:00:00Z', 'from')).toThrow(/not a valid time/);
    expect(() => parseTime('2021-02-30T10:00:00+05:00', 'from')).toThrow('from is not a valid time: 2021-02-30T10:00:00+05:00');
    // A real day stays valid whatever the offset does to the UTC date.
    expect(parseTime('2021-03-01T01:00:00+05:00', 'from')).toBe(Date.UTC(2021, 1, 28, 20));
  });
});

describe('parseBucket', () => {
  it('reads ms, s, m, h and d', () => {
    expect(['250ms', '30s', '5m', '1h', '7d'].map(parseBucket)).toEqual([250, 30_000, 300_000, H, 7 * D]);
  });

  it('refuses zero, fractions and unknown units', () => {
    for (const bad of ['0h', '1.5h', '5x', 'h', '']) expect(() => parseBucket(bad)).toThrow(/^bucket must be/);
  });
});

describe('maxBuckets', () => {
  it('counts the epoch-aligned buckets a range touches', () => {
    expect(maxBuckets(0, D - 1, H)).toBe(24);
    expect(maxBuckets(H / 2, H, H)).toBe(2);
  });
});

describe('resolveWindow', () => {
  const newest = Date.UTC(2024, 0, 31, 23, 35, 51, 353);

  it('without a to, a from past the newest sample is an empty range ending at from, not a 400', async () => {
    await expect(resolveWindow({ from: String(newest + 1) }, async () => newest, 5000)).resolves.toEqual({ from: newest + 1, to: newest + 1, bucketMs: H });
    await expect(resolveWindow({ from: String(newest - H) }, async () => newest, 5000)).resolves.toEqual({ from: newest - H, to: newest, bucketMs: H });
  });

  it('a to the client gave before from is still refused, naming both', async () => {
    await expect(resolveWindow({ from: String(newest + 1), to: String(newest) }, async () => newest, 5000)).rejects.toThrow(/must not be after to/);
  });
});

describe('rawSpanProblem', () => {
  it('accepts up to the limit and names the limit, the setting and the span beyond it', () => {
    expect(rawSpanProblem(31 * D, 0, 31 * D, 'aggregation=std.p', 'use a shorter range')).toBeUndefined();
    expect(rawSpanProblem(36 * D, 0, 31 * D, 'aggregation=std.p', 'use a shorter range')).toBe(
      'aggregation=std.p is computed from raw samples, and this range would read 36 days of them, more than SERIES_MAX_RAW_SPAN_MS allows (31 days): use a shorter range',
    );
    expect(rawSpanProblem(36 * H, 0, 90 * 60_000, 'The verdict history', 'use a shorter range')).toMatch(/read 36 hours of them, .*allows \(90 minutes\)/);
  });

  it('counts a range up to the retention: a series keeps no more', () => {
    expect(rawSpanProblem(365 * D, 30 * D, 31 * D, 'aggregation=std.p', 'x')).toBeUndefined();
    expect(rawSpanProblem(365 * D, 30 * D, 7 * D, 'aggregation=std.p', 'x')).toMatch(/would read 30 days of them/);
  });
});

describe('planQuery', () => {
  const tiers = (from: number, to: number) => [
    { bucketMs: H, complete: { from, to } },
    { bucketMs: D, complete: { from: Math.ceil(from / D) * D, to: Math.floor(to / D) * D } },
  ];

  it('reads whole days from the daily tier, whole hours around them hourly, the rest raw', () => {
    expect(planQuery({ from: H / 2, to: 3 * D + 5 * H + 5, bucketMs: D, aggregation: 'sum' }, tiers(0, 3 * D + 5 * H))).toEqual({
      rawBucketMs: H,
      pieces: [
        { tierMs: null, from: H / 2, to: H - 1 },
        { tierMs: H, from: H, to: D - 1 },
        { tierMs: D, from: D, to: 3 * D - 1 },
        { tierMs: H, from: 3 * D, to: 3 * D + 5 * H - 1 },
        { tierMs: null, from: 3 * D + 5 * H, to: 3 * D + 5 * H + 5 },
      ],
    });
  });

  it('uses only tiers whose bucket divides the requested one', () => {
    expect(planQuery({ from: H / 2, to: 5 * H, bucketMs: 2 * H, aggregation: 'avg' }, tiers(0, 4 * H))).toEqual({
      rawBucketMs: H,
      pieces: [
        { tierMs: null, from: H / 2, to: H - 1 },
        { tierMs: H, from: H, to: 4 * H - 1 },
        { tierMs: null, from: 4 * H, to: 5 * H },
      ],
    });
  });

  it('answers 24 h in 5 min buckets from the 5-minute tier, the cut edge and the open bucket raw in 5 min buckets', () => {
    const M5 = 300_000;
    const from = D + 2 * M5 + 7;
    const to = 2 * D + 3 * M5 + 11;
    expect(planQuery({ from, to, bucketMs: M5, aggregation: 'avg' }, [{ bucketMs: M5, complete: { from: 0, to: 2 * D + 3 * M5 } }])).toEqual({
      rawBucketMs: M5,
      pieces: [
        { tierMs: null, from, to: D + 3 * M5 - 1 },
        { tierMs: M5, from: D + 3 * M5, to: 2 * D + 3 * M5 - 1 },
        { tierMs: null, from: 2 * D + 3 * M5, to },
      ],
    });
  });

  it('falls back to raw for aggregations that do not compose, buckets no tier divides, or no coverage', () => {
    expect(planQuery({ from: 0, to: D, bucketMs: H, aggregation: 'std.p' }, tiers(0, D))).toBeNull();
    expect(planQuery({ from: 0, to: D, bucketMs: 30 * 60_000, aggregation: 'avg' }, tiers(0, D))).toBeNull();
    expect(planQuery({ from: 0, to: D, bucketMs: H, aggregation: 'avg' }, [{ bucketMs: H, complete: null }])).toBeNull();
    // Complete hours exist, but none lies wholly inside the range.
    expect(planQuery({ from: H + 1, to: 2 * H - 1, bucketMs: H, aggregation: 'max' }, tiers(0, D))).toBeNull();
  });

  it('does not use buckets before complete_from', () => {
    expect(planQuery({ from: 0, to: 10 * H - 1, bucketMs: H, aggregation: 'count' }, [{ bucketMs: H, complete: { from: 6 * H, to: 9 * H } }])).toEqual({
      rawBucketMs: H,
      pieces: [
        { tierMs: null, from: 0, to: 6 * H - 1 },
        { tierMs: H, from: 6 * H, to: 9 * H - 1 },
        { tierMs: null, from: 9 * H, to: 10 * H - 1 },
      ],
    });
  });
});

describe('foldPartials', () => {
  const partials: Partials = new Map([
    [2 * H, { sum: 6, count: 3, min: 1, max: 3, first: 1, last: 3 }],
    [0, { sum: 10, count: 2, min: 4, max: 6, first: 4, last: 6 }],
    [H, { sum: -1, count: 1, min: -1, max: -1, first: -1, last: -1 }],
    [5 * H, { sum: 2, count: 1, min: 2, max: 2, first: 2, last: 2 }],
  ]);

  it('combines tier buckets in time order into the requested buckets', () => {
    expect(foldPartials(partials, 3 * H, 'avg')).toEqual([
      { timestamp: 0, value: 15 / 6 },
      { timestamp: 3 * H, value: 2 },
    ]);
    expect(foldPartials(partials, 3 * H, 'first')).toEqual([
      { timestamp: 0, value: 4 },
      { timestamp: 3 * H, value: 2 },
    ]);
    expect(foldPartials(partials, 3 * H, 'last').map((s) => s.value)).toEqual([3, 2]);
    expect(foldPartials(partials, 3 * H, 'range').map((s) => s.value)).toEqual([7, 0]);
    expect(foldPartials(partials, D, 'count')).toEqual([{ timestamp: 0, value: 7 }]);
  });
});
