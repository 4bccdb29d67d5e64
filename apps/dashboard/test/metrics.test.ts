import { describe, expect, it } from 'vitest';
import type { EvalMetrics, StepMetrics } from '@stride/protocol';
import { MetricsSeries, smooth } from '../src/ui/metrics.ts';

const step = (s: number, loss: number): StepMetrics => ({ type: 'step', step: s, loss } as unknown as StepMetrics);
const evaluation = (s: number, testLoss: number): EvalMetrics => ({ type: 'eval', step: s, testLoss } as unknown as EvalMetrics);

describe('MetricsSeries', () => {
  it('keeps records in step order, ignores duplicates (a live event also in the fetched file)', () => {
    const m = new MetricsSeries();
    m.reset([step(0, 3), step(1, 2), evaluation(2, 1.5)]);
    expect(m.add(step(1, 2))).toBe(false);
    expect(m.add(step(3, 1))).toBe(true);
    expect(m.add(step(2, 1.8))).toBe(true); // late, out of order
    expect(m.steps.map((s) => s.step)).toEqual([0, 1, 2, 3]);
    expect(m.add(evaluation(2, 1.5))).toBe(false);
  });

  it('joins train and eval columns on x = parameter version, null where a series has no value', () => {
    const m = new MetricsSeries();
    // Evaluation before training (version 0), train steps 0..2 (versions 1..3), evaluation at version 2.
    m.reset([evaluation(0, 2.4), step(0, 2.3), step(1, 2.0), evaluation(2, 1.9), step(2, 1.7)]);
    const data = m.joined([m.steps.map((s) => s.loss)], [m.evals.map((e) => e.testLoss)]);
    expect(data.x).toEqual([0, 1, 2, 3]);
    expect(data.ys).toEqual([
      [null, 2.3, 2.0, 1.7],
      [2.4, null, 1.9, null],
    ]);
  });

  it('counts skipped steps without drawing them, ignores records of unknown kinds', () => {
    const m = new MetricsSeries();
    m.reset([step(0, 2.3), { type: 'skip', step: 1, reason: 'non-finite gradient in shard 2' }, step(2, 2.0), { type: 'future-kind', step: 3 }]);
    expect(m.steps.map((s) => s.step)).toEqual([0, 2]);
    expect(m.skipped).toBe(1);
    expect(m.add({ type: 'skip' })).toBe(false);
    expect(m.skipped).toBe(2);
  });
});

describe('smooth', () => {
  it('is debiased: a constant series stays constant from the first value', () => {
    expect(Array.from(smooth([5, 5, 5, 5]))).toEqual([5, 5, 5, 5].map((v) => expect.closeTo(v, 12)));
  });

  it('follows a step change gradually (weight 0.6 for short series)', () => {
    const out = smooth([0, 0, 1]);
    // acc = 0.4 after the jump, norm = 0.4 + 0.6·0.4 + 0.36·0.4 = 0.784
    expect(out[2]).toBeCloseTo(0.4 / 0.784, 12);
  });
});
