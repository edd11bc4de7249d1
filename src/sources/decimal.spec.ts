import { epochSecondsField, isDecimalString, isoTimeField, MAX_DECIMAL_CHARS, numberField, priceField, utcDayField } from './decimal.js';

describe('decimal strings (issue #11.2)', () => {
  const hostile = `${'1'.repeat(50_000)}x`;

  it('rejects fifty thousand digits and an x by length, before any pattern', () => {
    expect(numberField(hostile, 'btc_price', { strings: true })).toBe('btc_price is too long (50001 characters)');
  });

  it('the pattern alone (no cap) answers right on very long strings', () => {
    expect(isDecimalString(hostile)).toBe(false);
    expect(isDecimalString(`${'1'.repeat(50_000)}.${'2'.repeat(50_000)}e`)).toBe(false);
    expect(isDecimalString('1'.repeat(50_000))).toBe(true);
  });

  it.each([
    ['85864.00', 85864],
    ['0.00782662', 0.00782662],
    ['-0.5', -0.5],
    ['.5', 0.5],
    ['5.', 5],
    ['1e3', 1000],
    ['+2E-2', 0.02],
  ])('reads %s', (s, n) => {
    expect(numberField(s, 'f', { strings: true })).toBe(n);
  });

  it.each([
    ['', 'f is not a number'],
    [' 1', 'f is not a number'],
    ['0x10', 'f is not a number'],
    ['1e', 'f is not a number'],
    ['.', 'f is not a number'],
    ['Infinity', 'f is not a number'],
    ['1e999', 'f is not finite'],
    ['1'.repeat(MAX_DECIMAL_CHARS + 1), `f is too long (${MAX_DECIMAL_CHARS + 1} characters)`],
  ])('rejects %j: %s', (s, reason) => {
    expect(numberField(s, 'f', { strings: true })).toBe(reason);
  });

  it('accepts only the kinds a field allows', () => {
    expect(numberField('1', 'f', { numbers: true })).toBe('f has the wrong type (string)');
    expect(numberField(1, 'f', { strings: true })).toBe('f has the wrong type (number)');
    expect(numberField(null, 'f', { numbers: true })).toBe('f is missing');
    expect(priceField('0', 'f', { strings: true })).toBe('f is not positive');
    expect(priceField('1.7e308', 'f', { strings: true })).toBe('f is not a plausible price (1000000000 or more)');
    expect(priceField(1e9, 'f', { numbers: true })).toBe('f is not a plausible price (1000000000 or more)');
    expect(priceField('63212.97', 'f', { strings: true })).toBe(63212.97);
    // Stored for good: an absurdly low price would drag every average it joins.
    expect(priceField('1e-300', 'f', { strings: true })).toBe('f is not a plausible price (below 1)');
    expect(priceField(0.000001, 'f', { numbers: true })).toBe('f is not a plausible price (below 1)');
    expect(priceField('1.00', 'f', { strings: true })).toBe(1);
  });
});

describe('times', () => {
  it('reads Coinbase ISO times with nine fractional digits, truncating to ms', () => {
    expect(isoTimeField('2026-06-19T16:43:33.016274911Z', 'time')).toBe(1781887413016);
    expect(isoTimeField('2026-06-19T16:43:33Z', 'time')).toBe(1781887413000);
    expect(isoTimeField('2026-06-19T18:43:33.5+02:00', 'time')).toBe(1781887413500);
  });

  it.each(['2026-02-30T00:00:00Z', '2026-02-29T12:00:00Z', '2026-13-01T00:00:00Z', '2026-06-00T00:00:00Z', '2026-06-19T24:00:00Z', '2026-06-19T23:60:00Z'])(
    'rejects a time not in the calendar, %j (Date.parse rolls some over)',
    (v) => {
      expect(isoTimeField(v, 'time')).toBe('time is not a valid time');
    },
  );

  it('reads the 29th of February of a leap year', () => {
    expect(isoTimeField('2028-02-29T12:00:00Z', 'time')).toBe(Date.UTC(2028, 1, 29, 12));
  });

  it.each(['2026-06-19', '2026-06-19T16:43:33.0162749111Z', 'yesterday', `2026-06-19T16:43:33.${'1'.repeat(50_000)}Z`])('rejects time %j', (v) => {
    expect(isoTimeField(v, 'time')).toBe('time is not an ISO-8601 time');
  });

  it('refuses a time before Bitcoin existed, in every form a feed sends one', () => {
    expect(epochSecondsField('86400', 'timestamp', { strings: true })).toBe('timestamp is before Bitcoin existed (2009-01-03)');
    expect(epochSecondsField(1_231_006_504, 'time', { numbers: true })).toBe('time is before Bitcoin existed (2009-01-03)');
    expect(epochSecondsField(1_231_006_505, 'time', { numbers: true })).toBe(1_231_006_505_000);
    expect(isoTimeField('1970-01-02T00:00:00Z', 'time')).toBe('time is before Bitcoin existed (2009-01-03)');
    expect(utcDayField('2009-01-02', 'date')).toBe('date is before Bitcoin existed (2009-01-03)');
    expect(utcDayField('2009-01-03', 'date')).toBe(Date.UTC(2009, 0, 3));
  });

  it('reads epoch seconds given as digit strings or integers', () => {
    expect(epochSecondsField('1791193016', 'timestamp', { strings: true })).toBe(1791193016000);
    expect(epochSecondsField(1781887140, 'time', { numbers: true })).toBe(1781887140000);
    expect(epochSecondsField('1.5', 'timestamp', { strings: true })).toBe('timestamp is not whole seconds');
    expect(epochSecondsField('1'.repeat(50_000), 'timestamp', { strings: true })).toBe('timestamp is too long');
    expect(epochSecondsField(1.5, 'time', { numbers: true })).toBe('time is out of range');
    expect(epochSecondsField(1791193016, 'timestamp', { strings: true })).toBe('timestamp has the wrong type (number)');
  });

  it('reads YYYY-MM-DD as 00:00 UTC of that day, real dates only', () => {
    expect(utcDayField('2023-04-17', 'date')).toBe(1681689600000);
    expect(utcDayField('2024-02-29', 'date')).toBe(1709164800000);
    expect(utcDayField('2023-02-29', 'date')).toBe('date is not a valid date');
    expect(utcDayField('2023-4-17', 'date')).toBe('date is not a YYYY-MM-DD date');
    expect(utcDayField(20230417, 'date')).toBe('date has the wrong type (number)');
  });
});
