import { describe, expect, it } from 'vitest';
import { formatIndependent, type IndependentRun } from '../src/independent.ts';

describe('the independent-processes ceiling', () => {
  it('sums each run, takes the median over runs, and compares it with n × 1 thread and with our n-thread figure', () => {
    const runs: IndependentRun[] = [
      { processes: 2, each: [6653, 4535], total: 11188 },
      { processes: 2, each: [6772, 6757], total: 13529 },
      { processes: 2, each: [4462, 6507], total: 10969 },
    ];
    const lines = formatIndependent(runs, 7909, 8843);
    expect(lines[0]).toBe('2 independent 1-thread trainings at once (one process each, nothing shared): 11,188 images/s in all (median of 3; per run 6,653 + 4,535; 6,772 + 6,757; 4,462 + 6,507)');
    // 11 188 / (2 × 7 909) and 8 843 / 11 188.
    expect(lines[1]).toMatch(/vs 2 × the 1-thread figure: 0\.71 /);
    expect(lines[2]).toMatch(/our 2-thread training \/ this ceiling: 0\.79 /);
    // Without the other figures (--no-torch has them; a failed row may not), only the total.
    expect(formatIndependent(runs, NaN, NaN)).toHaveLength(1);
    expect(formatIndependent([], 7909, 8843)).toEqual([]);
  });
});
