import { arrayOf, assertMostlyValid, batchOf, emptyTally, onStep, SKIP, tally, uniqueSortedSamples, YIELD_EVERY } from './records.js';

describe('records', () => {
  it('hands the event loop back while validating many records', async () => {
    let immediateRan = false;
    let seenAtEnd: boolean | undefined;
    setImmediate(() => (immediateRan = true));
    const records = Array.from({ length: YIELD_EVERY * 2 }, (_, i) => i);
    await tally(records, (raw, i) => {
      if (i === records.length - 1) seenAtEnd = immediateRan;
      return raw as number;
    });
    expect(seenAtEnd).toBe(true);
  });

  it('counts skipped, invalid (five reasons at most, numbered from the offset) and valid records', async () => {
    const t = await tally([1, 2, 3, 4, 5, 6, 7, 8], (raw) => ((raw as number) === 1 ? SKIP : (raw as number) > 2 ? `bad ${raw as number}` : 'x'), undefined, 10);
    expect(t).toEqual({
      values: [],
      fetched: 8,
      skipped: 1,
      invalid: 7,
      invalidReasons: ['#11: x', '#12: bad 3', '#13: bad 4', '#14: bad 5', '#15: bad 6'],
    });
  });

  it('the garbage rule: more invalid than usable records fails, as few as equal does not', () => {
    const base = { fetched: 4, invalidReasons: ['#0: x'] };
    expect(() => assertMostlyValid({ ...base, values: [1], skipped: 1, invalid: 2 })).not.toThrow();
    expect(() => assertMostlyValid({ ...base, values: [1], skipped: 0, invalid: 2 })).toThrow(/mostly invalid: 2 of 4/);
    expect(() => assertMostlyValid({ ...base, values: [], skipped: 0, invalid: 1 })).toThrow();
    expect(() => assertMostlyValid({ ...base, values: [], skipped: 0, invalid: 0 })).not.toThrow();
  });

  it('arrayOf refuses non-arrays and too many records', () => {
    expect(() => arrayOf(null, 5)).toThrow('upstream payload is not a JSON array (got null)');
    expect(() => arrayOf([1, 2, 3], 2, 'candles')).toThrow('candles has 3 records, more than the 2 this source ever sends');
  });

  it('uniqueSortedSamples keeps the first sample per timestamp, oldest first', () => {
    expect(
      uniqueSortedSamples([
        { timestamp: 3, value: 1 },
        { timestamp: 1, value: 2 },
        { timestamp: 3, value: 9 },
      ]),
    ).toEqual([
      { timestamp: 1, value: 2 },
      { timestamp: 3, value: 1 },
    ]);
  });

  it('a time at the start of its step passes; one between steps is named', () => {
    expect(onStep(Date.UTC(2026, 5, 19, 16, 43), 60_000, 'time')).toBe(Date.UTC(2026, 5, 19, 16, 43));
    expect(onStep(Date.UTC(2026, 5, 19, 16, 43, 30), 60_000, 'time')).toBe('time is not at the start of a minute');
    expect(onStep(Date.UTC(2026, 5, 19, 16, 30), 3_600_000, 'time')).toBe('time is not at the start of an hour');
  });

  it('a batch keeps one of records repeating a sample, and refuses every record of a time given two values', () => {
    const t = { ...emptyTally<{ timestamp: number; value: number }>(), fetched: 5 };
    t.values = [
      { timestamp: 2000, value: 7 },
      { timestamp: 1000, value: 5 },
      { timestamp: 1000, value: 5 },
      { timestamp: 3000, value: 1 },
      { timestamp: 3000, value: 9 },
    ];
    const batch = batchOf('price', t, 1);
    expect(batch.samples.price).toEqual([
      { timestamp: 1000, value: 5 },
      { timestamp: 2000, value: 7 },
    ]);
    expect(batch).toMatchObject({ fetched: 5, invalid: 2, invalidReasons: ['records at 1970-01-01T00:00:03.000Z give it different values'] });
  });
});
