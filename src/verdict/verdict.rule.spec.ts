import type { Direction } from '../summary/dto/summary-response.dto.js';
import { VERDICT_CODE, verdictOf, verdictOfCode, VERDICTS } from './verdict.rule.js';

describe('the verdict rule', () => {
  const directions: Array<Direction | null> = ['rising', 'falling', 'flat', null];

  it('is lit when both rise, cold when both fall, unknown when a direction is missing, mixed otherwise (flat included)', () => {
    const table = Object.fromEntries(directions.flatMap((p) => directions.map((s) => [`${p}/${s}`, verdictOf(p, s)])));
    expect(table).toEqual({
      'rising/rising': 'lit',
      'rising/falling': 'mixed',
      'rising/flat': 'mixed',
      'rising/null': 'unknown',
      'falling/rising': 'mixed',
      'falling/falling': 'cold',
      'falling/flat': 'mixed',
      'falling/null': 'unknown',
      'flat/rising': 'mixed',
      'flat/falling': 'mixed',
      'flat/flat': 'mixed',
      'flat/null': 'unknown',
      'null/rising': 'unknown',
      'null/falling': 'unknown',
      'null/flat': 'unknown',
      'null/null': 'unknown',
    });
  });

  it('stores each verdict as a distinct code and reads it back; anything else is no verdict', () => {
    expect(new Set(VERDICTS.map((v) => VERDICT_CODE[v])).size).toBe(VERDICTS.length);
    for (const v of VERDICTS) expect(verdictOfCode(VERDICT_CODE[v])).toBe(v);
    expect(VERDICT_CODE).toEqual({ lit: 1, mixed: 0, cold: -1, unknown: 2 });
    expect(verdictOfCode(0.5)).toBeNull();
  });
});
