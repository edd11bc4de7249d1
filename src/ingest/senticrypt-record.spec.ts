import { parsePayload, PayloadError, validateRecord } from './senticrypt-record.js';

const good = { count: 7259, timestamp: 1625592626.3452034, rate: 0, last: 0.33, sum: 1425.82, mean: 0.2, median: 0.23, btc_price: '33885.23' };

describe('validateRecord', () => {
  it('reduces a real snapshot to ms timestamp, numeric price and sentiment', () => {
    expect(validateRecord(good)).toEqual({ timestamp: 1625592626345, price: 33885.23, sentiment: 0.2 });
  });

  it('keeps negative sentiment and accepts a numeric price', () => {
    expect(validateRecord({ ...good, mean: -0.35, btc_price: 30000 })).toEqual({ timestamp: 1625592626345, price: 30000, sentiment: -0.35 });
  });

  it.each([
    [{ ...good, btc_price: 'abc' }, 'btc_price is not a number'],
    [{ ...good, btc_price: '' }, 'btc_price is not a number'],
    [{ ...good, btc_price: ' 1' }, 'btc_price is not a number'],
    [{ ...good, btc_price: '0x10' }, 'btc_price is not a number'],
    [{ ...good, btc_price: '1e999' }, 'btc_price is not finite'],
    [{ ...good, btc_price: '0' }, 'btc_price is not positive'],
    [{ ...good, btc_price: undefined }, 'btc_price is missing'],
    [{ ...good, btc_price: true }, 'btc_price has the wrong type (boolean)'],
    [{ ...good, mean: '0.2' }, 'mean has the wrong type (string)'],
    [{ ...good, mean: null }, 'mean is missing'],
    [{ ...good, mean: Number.NaN }, 'mean is not finite'],
    [{ ...good, timestamp: '1625592626' }, 'timestamp has the wrong type (string)'],
    [{ ...good, timestamp: -1 }, 'timestamp is out of range'],
    [{ ...good, timestamp: 1e300 }, 'timestamp is out of range'],
    ['x', 'record is not an object'],
    [null, 'record is not an object'],
    [[good], 'record is not an object'],
  ])('rejects %j: %s', (raw, reason) => {
    expect(validateRecord(raw)).toBe(reason);
  });
});

describe('parsePayload', () => {
  it('keeps good records and counts bad ones with their index', () => {
    const r = parsePayload([good, { ...good, mean: 'x' }, good]);
    expect(r.records).toHaveLength(2);
    expect(r.invalid).toBe(1);
    expect(r.invalidReasons).toEqual(['#1: mean has the wrong type (string)']);
  });

  it('only counts records not newer than what is stored, without checking them further', () => {
    const stored = 1625592626345; // good's timestamp in ms
    const older = { ...good, timestamp: good.timestamp - 30, btc_price: 'n/a' }; // bad, but already behind us
    const newer = { ...good, timestamp: good.timestamp + 30 };
    const newerBad = { ...good, timestamp: good.timestamp + 60, mean: null };
    const r = parsePayload([older, good, newer, newerBad, 'junk'], stored);
    expect(r.records).toEqual([{ timestamp: 1625592656345, price: 33885.23, sentiment: 0.2 }]);
    expect(r.skipped).toBe(2);
    expect(r.invalid).toBe(2);
    expect(r.invalidReasons).toEqual(['#3: mean is missing', '#4: record is not an object']);
    // Without a stored timestamp (first run, full=true) everything is checked.
    expect(parsePayload([older, good, newer, newerBad, 'junk'])).toMatchObject({ skipped: 0, invalid: 3 });
  });

  it.each([[{}, 'object'], [null, 'null'], ['[]', 'string'], [42, 'number']])('fails the run when the payload is %j', (payload, kind) => {
    expect(() => parsePayload(payload)).toThrow(new PayloadError(`upstream payload is not a JSON array (got ${kind})`));
  });
});
