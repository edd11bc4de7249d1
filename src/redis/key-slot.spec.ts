import { hashTag, sameSlotKey } from './key-slot.js';

describe('hashTag', () => {
  it.each([
    ['app:price', null],
    ['{app}:price', 'app'],
    ['x{app}y{other}', 'app'], // the first tag counts
    ['a{}b{c}', null], // an empty first tag: the whole key is hashed
    ['a}b{c', null],
    ['{user1000}.following', 'user1000'],
  ])('%s → %s', (key, tag) => {
    expect(hashTag(key)).toBe(tag);
  });
});

describe('sameSlotKey', () => {
  it('wraps a key without braces in a hash tag (the tag is the whole key, so the slot is the same)', () => {
    expect(sameSlotKey('app:price:mean:30s', 'meta')).toBe('{app:price:mean:30s}:meta');
  });

  it('appends to a key that has its own hash tag', () => {
    expect(sameSlotKey('{app}:price:mean:30s', 'avg:1h')).toBe('{app}:price:mean:30s:avg:1h');
  });

  it('refuses braces without a usable tag', () => {
    expect(() => sameSlotKey('a{}b', 'meta')).toThrow(/braces but no hash tag/);
    expect(() => sameSlotKey('a}b', 'meta')).toThrow(/braces but no hash tag/);
  });
});
