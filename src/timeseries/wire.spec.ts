import { hashTag } from '../redis/key-slot.js';
import { assertRule, assertSeriesOptions } from './wire.js';

describe('hashTag', () => {
  it('is the text between the first { and the next }, when not empty (Redis Cluster rules)', () => {
    expect(hashTag('{user1000}.following')).toBe('user1000');
    expect(hashTag('app:{btc}:price')).toBe('btc');
    expect(hashTag('foo{}{bar}')).toBeNull();
    expect(hashTag('foo{{bar}}')).toBe('{bar');
    expect(hashTag('plain:key')).toBeNull();
  });
});

describe('assertRule', () => {
  it('accepts the compactable aggregations and refuses twa, bad buckets and equal keys', () => {
    expect(() => assertRule('s', { destKey: 'd', aggregation: 'std.s', bucketMs: 1000 })).not.toThrow();
    expect(() => assertRule('s', { destKey: 'd', aggregation: 'twa', bucketMs: 1000 })).toThrow(/twa/);
    expect(() => assertRule('s', { destKey: 'd', aggregation: 'sum', bucketMs: 0 })).toThrow(/bucketMs/);
    expect(() => assertRule('s', { destKey: 's', aggregation: 'sum', bucketMs: 1 })).toThrow(/distinct/);
  });
});

describe('assertSeriesOptions', () => {
  it('refuses label values RedisTimeSeries cannot parse (empty, or holding "(", ")" or ",")', () => {
    expect(() => assertSeriesOptions({ retentionMs: 0, labels: { unit: 'score -1..1', app: 'is-bitcoin-lit' } })).not.toThrow();
    for (const value of ['', 'a,b', 'f(x)', 'x)']) {
      expect(() => assertSeriesOptions({ retentionMs: 0, labels: { unit: value } })).toThrow(RangeError);
    }
  });
});
