import { jsonBoundsProblem, jsonSizeProblem } from './json-bounds.js';

describe('jsonBoundsProblem', () => {
  it('passes the shapes upstreams send', () => {
    expect(jsonBoundsProblem('{"data":[{"value":"39","timestamp":"1746148800"}],"metadata":{"error":null}}')).toBeUndefined();
    expect(jsonBoundsProblem(JSON.stringify(Array.from({ length: 25_000 }, (_, i) => ({ timestamp: i, mean: 0.1 }))))).toBeUndefined();
    expect(jsonBoundsProblem('{"error":[],"result":{"XXBTZUSD":[[1,"2","3"]],"last":1}}')).toBeUndefined();
  });

  it('refuses nesting past the depth limit, wherever it is', () => {
    expect(jsonBoundsProblem(`${'['.repeat(16)}${']'.repeat(16)}`)).toBeUndefined();
    expect(jsonBoundsProblem(`${'['.repeat(17)}${']'.repeat(17)}`)).toBe('nested more than 16 levels deep');
    expect(jsonBoundsProblem(`[1,{"a":${'{"b":'.repeat(20)}0${'}'.repeat(20)}}]`)).toBe('nested more than 16 levels deep');
    // Two million levels: refused in one linear pass, nothing parsed.
    expect(jsonBoundsProblem('['.repeat(2_000_000))).toBe('nested more than 16 levels deep');
  });

  it('refuses more objects and arrays than the limit, however shallow', () => {
    expect(jsonBoundsProblem(`[${Array(10).fill('{}').join(',')}]`, 16, 11)).toBeUndefined();
    expect(jsonBoundsProblem(`[${Array(11).fill('{}').join(',')}]`, 16, 11)).toBe('more than 11 objects and arrays');
    expect(jsonBoundsProblem(`[${Array(1_400_000).fill('{}').join(',')}]`)).toBe('more than 65536 objects and arrays');
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    expect(jsonBoundsProblem(JSON.stringify({ note: '['.repeat(100), quoted: '\\"[[[[[[[[[[[[[[[[[[[[' }), 16, 1)).toBeUndefined();
    expect(jsonBoundsProblem(JSON.stringify(['"', '[[[['.repeat(10)]), 16, 1)).toBeUndefined();
  });
});

describe('jsonSizeProblem', () => {
  it('counts objects and arrays by their opening characters, an upper bound (brackets in strings count)', () => {
    expect(jsonSizeProblem(JSON.stringify(Array.from({ length: 25_000 }, (_, i) => ({ timestamp: i, mean: 0.1 }))))).toBeUndefined();
    expect(jsonSizeProblem(`[${Array(1_400_000).fill('{}').join(',')}]`)).toBe('more than 65536 objects and arrays');
    expect(jsonSizeProblem('['.repeat(2_000_000))).toBe('more than 65536 objects and arrays');
    expect(jsonSizeProblem('["[{", {}]', 4)).toBeUndefined();
    expect(jsonSizeProblem('["[{", {}, []]', 4)).toBe('more than 4 objects and arrays');
  });
});

