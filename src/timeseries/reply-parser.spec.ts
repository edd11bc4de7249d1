import {
  parseDouble,
  parseInfo,
  parseRules,
  parseLabels,
  parseMapEntries,
  parseMembers,
  parseSample,
  parseSamples,
  parseTimestamp,
} from './reply-parser.js';

describe('parseMembers (portable series members)', () => {
  it('splits "<timestamp>:<value text>" at the first colon', () => {
    expect(parseMembers(['1000:30', '1010:-6.295081967213113E-2', Buffer.from('1020:1e+21'), '1030:-0'])).toEqual([
      { timestamp: 1000, value: 30 },
      { timestamp: 1010, value: -0.06295081967213113 },
      { timestamp: 1020, value: 1e21 },
      { timestamp: 1030, value: -0 },
    ]);
    expect(parseMembers(null)).toEqual([]);
  });

  it.each([[':30'], ['1000'], ['x:1'], ['1000:'], ['1000:abc']])('refuses %j', (member) => {
    expect(() => parseMembers([member])).toThrow(TypeError);
  });
});

describe('parseDouble', () => {
  it.each([
    ['33885.23', 33885.23],
    ['0.1', 0.1],
    ['-6.295081967213113E-2', -0.06295081967213113],
    ['-6.295081967213113e-2', -6.295081967213113e-2],
    ['1e+21', 1e21],
    ['5E-7', 5e-7],
    ['-0', -0],
    ['42', 42],
    ['.5', 0.5],
    ['1.7976931348623157e308', Number.MAX_VALUE],
  ])('parses RESP2 text %s', (text, expected) => {
    expect(Object.is(parseDouble(text), expected)).toBe(true);
  });

  it('parses the inf / nan spellings', () => {
    expect(parseDouble('inf')).toBe(Infinity);
    expect(parseDouble('+inf')).toBe(Infinity);
    expect(parseDouble('-inf')).toBe(-Infinity);
    expect(parseDouble('INF')).toBe(Infinity);
    expect(parseDouble('nan')).toBeNaN();
    expect(parseDouble('-nan')).toBeNaN();
  });

  it('passes RESP3 numbers through', () => {
    expect(parseDouble(-0.06295081967213113)).toBe(-0.06295081967213113);
    expect(parseDouble(Infinity)).toBe(Infinity);
  });

  it('reads Buffers', () => {
    expect(parseDouble(Buffer.from('12.5'))).toBe(12.5);
  });

  it.each(['', 'abc', '0x10', '1,5', '1e', '--1'])('refuses %j', (text) => {
    expect(() => parseDouble(text)).toThrow(TypeError);
  });

  it('refuses non-textual replies', () => {
    expect(() => parseDouble(null)).toThrow(TypeError);
    expect(() => parseDouble(['1'])).toThrow(TypeError);
  });
});

describe('parseTimestamp', () => {
  it('accepts integers as numbers, digit strings and bigints', () => {
    expect(parseTimestamp(1625616000000)).toBe(1625616000000);
    expect(parseTimestamp('1625616000000')).toBe(1625616000000);
    expect(parseTimestamp(1625616000000n)).toBe(1625616000000);
    expect(parseTimestamp(0)).toBe(0);
  });

  it('refuses fractions and garbage', () => {
    expect(() => parseTimestamp(1.5)).toThrow(TypeError);
    expect(() => parseTimestamp('1.5')).toThrow(TypeError);
    expect(() => parseTimestamp('x')).toThrow(TypeError);
  });
});

describe('parseSample / parseSamples', () => {
  it('parses a RESP2 TS.GET reply', () => {
    expect(parseSample([1000, '-6.295081967213113E-2'])).toEqual({ timestamp: 1000, value: -0.06295081967213113 });
  });

  it('parses a RESP3 TS.GET reply', () => {
    expect(parseSample([1000, 33885.23])).toEqual({ timestamp: 1000, value: 33885.23 });
  });

  it('treats the empty TS.GET reply (empty series) and nil as no sample', () => {
    expect(parseSample([])).toBeNull();
    expect(parseSample(null)).toBeNull();
  });

  it('parses TS.RANGE replies in both protocols', () => {
    const resp2 = [
      [1000, '30'],
      [1010, '3.5E-1'],
      [1020, 'inf'],
    ];
    const resp3 = [
      [1000, 30],
      [1010, 0.35],
      [1020, Infinity],
    ];
    const expected = [
      { timestamp: 1000, value: 30 },
      { timestamp: 1010, value: 0.35 },
      { timestamp: 1020, value: Infinity },
    ];
    expect(parseSamples(resp2)).toEqual(expected);
    expect(parseSamples(resp3)).toEqual(expected);
    expect(parseSamples([])).toEqual([]);
    expect(parseSamples(null)).toEqual([]);
  });

  it('refuses malformed pairs', () => {
    expect(() => parseSamples([[1000]])).toThrow(TypeError);
    expect(() => parseSamples([[]])).toThrow(TypeError);
    expect(() => parseSamples('x')).toThrow(TypeError);
  });
});

describe('parseMapEntries / parseLabels', () => {
  const expected = { room: 'kitchen', type: 'temperature' };

  it('reads labels as [[name, value], …] pairs (RESP2)', () => {
    expect(
      parseLabels([
        ['room', 'kitchen'],
        ['type', 'temperature'],
      ]),
    ).toEqual(expected);
  });

  it('reads labels as a flat array (RESP3 map under the legacy mapping)', () => {
    expect(parseLabels(['room', 'kitchen', 'type', 'temperature'])).toEqual(expected);
  });

  it('reads labels as an object or Map (RESP3 map)', () => {
    expect(parseLabels({ room: 'kitchen', type: 'temperature' })).toEqual(expected);
    expect(parseLabels(new Map([['room', 'kitchen'], ['type', 'temperature']]))).toEqual(expected);
  });

  it('reads empty and nil labels', () => {
    expect(parseLabels([])).toEqual({});
    expect(parseLabels({})).toEqual({});
    expect(parseLabels(null)).toEqual({});
    expect(parseLabels([['room', null]])).toEqual({ room: '' });
  });

  it('refuses an odd flat array', () => {
    expect(() => parseMapEntries(['a', '1', 'b'])).toThrow(TypeError);
  });
});

describe('parseInfo', () => {
  const expected = {
    key: 'k',
    totalSamples: 3,
    firstTimestamp: 1000,
    lastTimestamp: 3000,
    retentionMs: 60000,
    duplicatePolicy: 'first',
    labels: { room: 'kitchen' },
    sourceKey: null,
    rules: [],
  };

  it('parses the RESP2 flat array (as in the TS.INFO docs)', () => {
    const reply = [
      'totalSamples', 3, 'memoryUsage', 4246, 'firstTimestamp', 1000, 'lastTimestamp', 3000,
      'retentionTime', 60000, 'chunkCount', 1, 'chunkSize', 4096, 'chunkType', 'compressed',
      'duplicatePolicy', 'first', 'labels', [['room', 'kitchen']], 'sourceKey', null, 'rules', [],
    ];
    expect(parseInfo('k', reply)).toEqual(expected);
  });

  it('parses RESP3 under the legacy mapping (maps flattened, labels flat)', () => {
    const reply = [
      'totalSamples', 3, 'memoryUsage', 4246, 'firstTimestamp', 1000, 'lastTimestamp', 3000,
      'retentionTime', 60000, 'chunkCount', 1, 'chunkSize', 4096, 'chunkType', 'compressed',
      'duplicatePolicy', 'first', 'labels', ['room', 'kitchen'], 'sourceKey', null, 'rules', [],
    ];
    expect(parseInfo('k', reply)).toEqual(expected);
  });

  it('parses RESP3 maps as objects', () => {
    const reply = {
      totalSamples: 3,
      memoryUsage: 4246,
      firstTimestamp: 1000,
      lastTimestamp: 3000,
      retentionTime: 60000,
      chunkCount: 1,
      chunkSize: 4096,
      chunkType: 'compressed',
      duplicatePolicy: 'first',
      labels: { room: 'kitchen' },
      sourceKey: null,
      rules: {},
    };
    expect(parseInfo('k', reply)).toEqual(expected);
  });

  it('reports a nil duplicate policy as "none" and lower-cases the policy', () => {
    const base = ['totalSamples', 0, 'firstTimestamp', 0, 'lastTimestamp', 0, 'retentionTime', 0, 'labels', []];
    expect(parseInfo('k', [...base, 'duplicatePolicy', null]).duplicatePolicy).toBe('none');
    expect(parseInfo('k', [...base, 'duplicatePolicy', 'FIRST']).duplicatePolicy).toBe('first');
  });

  it('parses compaction rules in the RESP2 list form (3 or 4 items) and the RESP3 map forms', () => {
    const rules = [
      { destKey: 'd1', bucketMs: 3_600_000, aggregation: 'sum' },
      { destKey: 'd2', bucketMs: 86_400_000, aggregation: 'std.p' },
    ];
    expect(parseRules([['d1', 3_600_000, 'SUM'], ['d2', 86_400_000, 'std.p', 0]])).toEqual(rules);
    expect(parseRules({ d1: [3_600_000, 'sum', 0], d2: [86_400_000, 'STD.P', 0] })).toEqual(rules);
    expect(parseRules(['d1', [3_600_000, 'sum', 0], 'd2', ['86400000', 'std.p', 0]])).toEqual(rules);
    expect(parseRules(new Map([['d1', [3_600_000, 'sum']]]))).toEqual(rules.slice(0, 1));
    expect(parseRules(null)).toEqual([]);
    // An aggregator this service never creates (countNaN, RedisTimeSeries 8.6, in a rule made by
    // hand) is reported as it is: throwing failed TS.INFO, GET /series and the startup rule check.
    expect(parseRules([['d1', 1000, 'COUNTNAN']])).toEqual([{ destKey: 'd1', bucketMs: 1000, aggregation: 'countnan' }]);
    expect(() => parseRules([['d1', 1000, null]])).toThrow(/no aggregation/);
  });

  it('keeps a rule\'s alignTimestamp when it is not 0 (a rule created by hand)', () => {
    const aligned = { destKey: 'd1', bucketMs: 3_600_000, aggregation: 'sum', alignMs: 1_800_000 };
    expect(parseRules([['d1', 3_600_000, 'SUM', 1_800_000]])).toEqual([aligned]);
    expect(parseRules({ d1: [3_600_000, 'sum', '1800000'] })).toEqual([aligned]);
    expect(parseRules([['d1', 3_600_000, 'SUM', 0]])[0]).not.toHaveProperty('alignMs');
  });

  it('reads the source key of a compaction', () => {
    const base = ['totalSamples', 0, 'firstTimestamp', 0, 'lastTimestamp', 0, 'retentionTime', 0, 'labels', []];
    expect(parseInfo('k', [...base, 'sourceKey', 'src', 'rules', []])).toMatchObject({ sourceKey: 'src', rules: [] });
  });

  it('refuses a reply without the counters', () => {
    expect(() => parseInfo('k', ['labels', []])).toThrow(/totalSamples/);
  });
});
