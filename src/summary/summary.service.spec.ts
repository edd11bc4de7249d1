import { buildSummary, CARRY_MS, direction, levelsInEffect, windowStart } from './summary.service.js';

const H = 3_600_000;

describe('summary helpers', () => {
  it('starts the window at the top of the hour SUMMARY_HOURS-1 hours before the anchor hour', () => {
    const anchor = Date.UTC(2021, 6, 7, 17, 30, 18);
    expect(new Date(windowStart(anchor, 3)).toISOString()).toBe('2021-07-07T15:00:00.000Z');
    expect(new Date(windowStart(anchor, 1)).toISOString()).toBe('2021-07-07T17:00:00.000Z');
    expect(windowStart(17 * H, 3)).toBe(15 * H); // anchor exactly on the hour
  });

  it('compares numbers, not strings', () => {
    expect(direction(-0.5, -0.1)).toBe('rising');
    expect(direction(-0.1, -0.5)).toBe('falling');
    expect(direction(9, 10)).toBe('rising'); // "9" > "10" as strings
    expect(direction(1, 1)).toBe('flat');
  });

  it('joins price and sentiment on bucket time; an hour missing from one has null there', () => {
    const s = buildSummary(
      [
        { timestamp: 0, value: 10 },
        { timestamp: H, value: 11 },
        { timestamp: 2 * H, value: 9 },
      ],
      [
        { timestamp: 0, value: -0.2 },
        { timestamp: 2 * H, value: 0.1 },
      ],
    );
    expect(s).toEqual({
      hourly_average_of_averages: [
        { price: 10, sentiment: -0.2, time: '1970-01-01T00:00:00.000Z' },
        { price: 11, sentiment: null, time: '1970-01-01T01:00:00.000Z' },
        { price: 9, sentiment: 0.1, time: '1970-01-01T02:00:00.000Z' },
      ],
      price_direction: 'falling',
      sentiment_direction: 'rising',
    });
  });

  it('is null without any hour; one hour is flat; a metric without data has a null direction', () => {
    expect(buildSummary([], [])).toBeNull();
    expect(buildSummary([{ timestamp: 0, value: 1 }], [{ timestamp: 0, value: 2 }])).toMatchObject({ price_direction: 'flat', sentiment_direction: 'flat' });
    expect(buildSummary([{ timestamp: 0, value: 1 }, { timestamp: H, value: 2 }], [])).toEqual({
      hourly_average_of_averages: [
        { price: 1, sentiment: null, time: '1970-01-01T00:00:00.000Z' },
        { price: 2, sentiment: null, time: '1970-01-01T01:00:00.000Z' },
      ],
      price_direction: 'rising',
      sentiment_direction: null,
    });
  });

  it('carries a daily level through every hour until the next one, never before its time nor past CARRY_MS', () => {
    const D = 24 * H;
    const day1 = { timestamp: 10 * D, value: 0.3 };
    const day2 = { timestamp: 11 * D, value: -0.1 };
    // The window 10D-1h .. 11D+1h: nothing in effect before day 1's value.
    expect(levelsInEffect([day1, day2], 10 * D - H, 11 * D + H)).toEqual([
      ...Array.from({ length: 24 }, (_, i) => ({ timestamp: 10 * D + i * H, value: 0.3 })),
      { timestamp: 11 * D, value: -0.1 },
      { timestamp: 11 * D + H, value: -0.1 },
    ]);
    // A value inside an hour is in effect for that hour.
    expect(levelsInEffect([{ timestamp: 5 * H + 1, value: 7 }], 5 * H, 5 * H)).toEqual([{ timestamp: 5 * H, value: 7 }]);
    // Past CARRY_MS it no longer counts.
    expect(levelsInEffect([day1], 10 * D + CARRY_MS - H, 10 * D + CARRY_MS)).toEqual([{ timestamp: 10 * D + CARRY_MS - H, value: 0.3 }]);
  });
});
