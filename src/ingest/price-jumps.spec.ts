import { withoutPriceJumps } from './price-jumps.js';

const MIN = 60_000;
const at = (minute: number, value: number) => ({ timestamp: minute * MIN, value });

describe('withoutPriceJumps', () => {
  it('drops a tick more than the limit from the stored one, and compares the next with the last kept', () => {
    const { kept, dropped } = withoutPriceJumps([at(1, 999_999_998), at(2, 61_000), at(3, 60_500)], at(0, 60_000), 20, 10 * MIN);
    expect(kept).toEqual([at(2, 61_000), at(3, 60_500)]);
    expect(dropped).toBe(1);
  });

  it('keeps moves within the limit, either way, up to it', () => {
    const samples = [at(1, 72_000), at(2, 57_600), at(3, 46_080)];
    expect(withoutPriceJumps(samples, at(0, 60_000), 20, 10 * MIN).kept).toEqual(samples);
    expect(withoutPriceJumps([at(1, 1.5)], at(0, 60_000), 20, 10 * MIN).dropped).toBe(1);
  });

  it('takes a sample as it comes once the reference is older than the window (the venue was stale, or the reference bad)', () => {
    expect(withoutPriceJumps([at(10, 999_999_998)], at(0, 60_000), 20, 10 * MIN).dropped).toBe(0);
    // A bad stored reference: refused for one window, then the real level is back.
    const healed = withoutPriceJumps([at(1, 60_000), at(5, 60_100), at(11, 60_200), at(12, 60_300)], at(0, 999_999_998), 20, 10 * MIN);
    expect(healed.kept).toEqual([at(11, 60_200), at(12, 60_300)]);
  });

  it('checks nothing without a reference, nor samples not newer than it, nor with the limit at 0', () => {
    expect(withoutPriceJumps([at(1, 60_000), at(2, 60_100)], null, 20, 10 * MIN).dropped).toBe(0);
    expect(withoutPriceJumps([at(0, 1), at(-1, 5)], at(0, 60_000), 20, 10 * MIN).dropped).toBe(0);
    expect(withoutPriceJumps([at(1, 999_999_998)], at(0, 60_000), 0, 10 * MIN).dropped).toBe(0);
  });
});
