import { assertRule, hashTag, sameSlotKey } from './wire.js';

describe('hashTag', () => {
  it('is the text between the first { and the next }, when not empty (Redis Cluster rules)', () => {
    expect(hashTag('{user1000}.following')).toBe('user1000');
    expect(hashTag('app:{btc}:price')).toBe('btc');
    expect(hashTag('foo{}{bar}')).toBeNull();
    expect(hashTag('foo{{bar}}')).toBe('{bar');
    expect(hashTag('plain:key')).toBeNull();
  });
});

describe('sameSlotKey', () => {
  it('wraps an untagged key in a tag, keeps an existing tag', () => {
    expect(sameSlotKey('app:price:mean:30s', 'sum:1h')).toBe('{app:price:mean:30s}:sum:1h');
    expect(sameSlotKey('{app}:price', 'sum:1h')).toBe('{app}:price:sum:1h');
  });

  it('refuses braces that form no tag (the derived key would land elsewhere)', () => {
    expect(() => sameSlotKey('a{}b', 'x')).toThrow(/no hash tag/);
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
