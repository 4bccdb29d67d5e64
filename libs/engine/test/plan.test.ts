import { describe, expect, it } from 'vitest';
import { evalShardRanges, StepPlanner } from '../src/index.ts';

describe('StepPlanner', () => {
  it.each([
    [100, 10, 3],
    [103, 10, 4],
    [7, 7, 7],
    [50, 64, 4],
  ])('N=%i B=%i S=%i: one epoch covers every sample exactly once, in fixed shards of near-equal size', (n, b, s) => {
    const planner = new StepPlanner(n, b, s, 5);
    expect(planner.stepsPerEpoch).toBe(Math.ceil(n / b));
    const seen = new Uint8Array(n);
    for (let t = 0; t < planner.stepsPerEpoch; t++) {
      const p = planner.plan(t);
      expect(p.epoch).toBe(0);
      expect(p.batchIndex).toBe(t);
      expect(p.indices.length).toBe(Math.min(b, n - t * b));
      for (const i of p.indices) seen[i]++;
      // Contiguous ranges covering the batch in order, sizes differing by at most one, larger first.
      let pos = 0;
      const sizes = p.shards.map((sh) => {
        expect(sh.start).toBe(pos);
        pos = sh.end;
        return sh.end - sh.start;
      });
      expect(pos).toBe(p.indices.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      expect([...sizes].sort((x, y) => y - x)).toEqual(sizes);
      expect(sizes.every((z) => z > 0)).toBe(true);
      expect(p.shards.length).toBe(Math.min(s, p.indices.length));
    }
    expect([...seen].every((c) => c === 1)).toBe(true);
  });

  it('is a pure function of (N, B, S, seed, step), and epochs reshuffle', () => {
    const a = new StepPlanner(1000, 32, 4, 9);
    const b = new StepPlanner(1000, 32, 4, 9);
    // Out of order on one planner, in order on the other.
    for (const t of [40, 3, 0, 31, 32, 100]) expect([...a.plan(t).indices]).toEqual([...b.plan(t).indices]);
    expect(a.plan(32).epoch).toBe(1);
    expect([...a.plan(0).indices]).not.toEqual([...a.plan(32).indices]);
    expect([...new StepPlanner(1000, 32, 4, 10).plan(0).indices]).not.toEqual([...a.plan(0).indices]);
    // Shard membership depends only on the batch: the same whatever S is used elsewhere.
    expect(a.plan(5).shards).toEqual(new StepPlanner(1000, 32, 4, 1).plan(5).shards);
  });

  it('rejects bad arguments', () => {
    expect(() => new StepPlanner(10, 4, 5, 1)).toThrow(/shards \(5\) must not exceed batchSize \(4\)/);
    expect(() => new StepPlanner(0, 4, 1, 1)).toThrow(/datasetSize/);
    expect(() => new StepPlanner(10, 4, 1, 1).plan(-1)).toThrow(/step must be an integer >= 0, got -1/);
  });

  it('cuts an evaluation split into in-order ranges', () => {
    expect(evalShardRanges(10_000, 10).map((r) => r.end - r.start)).toEqual(new Array(10).fill(1000));
    expect(evalShardRanges(3, 10)).toEqual([
      { shard: 0, start: 0, end: 1 },
      { shard: 1, start: 1, end: 2 },
      { shard: 2, start: 2, end: 3 },
    ]);
  });
});
