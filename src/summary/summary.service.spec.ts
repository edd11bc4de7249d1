import { buildSummary, direction, windowStart } from './summary.service.js';

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

  it('joins price and sentiment on bucket time and drops hours missing from either', () => {
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
        { price: 9, sentiment: 0.1, time: '1970-01-01T02:00:00.000Z' },
      ],
      price_direction: 'falling',
      sentiment_direction: 'rising',
    });
  });

  it('is null without any common hour; one hour is flat', () => {
    expect(buildSummary([], [])).toBeNull();
    expect(buildSummary([{ timestamp: 0, value: 1 }], [{ timestamp: H, value: 1 }])).toBeNull();
    expect(buildSummary([{ timestamp: 0, value: 1 }], [{ timestamp: 0, value: 2 }])).toMatchObject({ price_direction: 'flat', sentiment_direction: 'flat' });
  });
});
