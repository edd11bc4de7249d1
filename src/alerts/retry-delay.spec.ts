import { retryDelay } from './alerts.service.js';

describe('webhook retry delay', () => {
  it('doubles from the base per attempt, jittered between half and all of it', () => {
    expect([1, 2, 3, 4].map((n) => retryDelay(n, 1000, 60_000, undefined, () => 1))).toEqual([1000, 2000, 4000, 8000]);
    expect([1, 2, 3, 4].map((n) => retryDelay(n, 1000, 60_000, undefined, () => 0))).toEqual([500, 1000, 2000, 4000]);
  });

  it('never exceeds the cap, even for a late attempt or a long Retry-After', () => {
    expect(retryDelay(40, 1000, 60_000, undefined, () => 1)).toBe(60_000);
    expect(retryDelay(1, 1000, 60_000, 3_600_000, () => 1)).toBe(60_000);
  });

  it('waits at least what the receiver asked for (Retry-After) within the cap', () => {
    expect(retryDelay(1, 1000, 60_000, 30_000, () => 0)).toBe(30_000);
    expect(retryDelay(3, 1000, 60_000, 10, () => 1)).toBe(4000);
  });
});
