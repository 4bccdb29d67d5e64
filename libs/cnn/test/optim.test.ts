import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createOptimizer, learningRateAt, OptimizerSpecError, paramsToBytes, validateScheduleSpec } from '../src/index.ts';
import type { OptimizerSpec, Param, ScheduleSpec } from '../src/index.ts';

// Written by tools/torch/optim_fixtures.py (PyTorch); regenerate with `/usr/bin/python3 tools/torch/optim_fixtures.py`.
interface Fixture {
  optimizers: {
    params: { name: string; shape: number[]; data: number[] }[];
    grads: number[][][];
    lrs: number[];
    cases: { title: string; spec: OptimizerSpec; after: number[][][] }[];
  };
  schedules: { baseLr: number; totalSteps: number; cases: { title: string; spec: ScheduleSpec; lrs: number[] }[] };
}
const fixture: Fixture = JSON.parse(readFileSync(new URL('./fixtures/optim.json', import.meta.url), 'utf8'));
const RTOL = 1e-5;
const ATOL = 1e-7;

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = ATOL + RTOL * Math.abs(expected[i]);
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      expect.fail(`${what}[${i}]: got ${actual[i]}, PyTorch ${expected[i]} (tolerance ${tol})`);
    }
  }
}

function freshParams(): Param[] {
  return fixture.optimizers.params.map((p) => ({ name: p.name, shape: p.shape, data: Float32Array.from(p.data), grad: new Float32Array(p.data.length) }));
}

function setGrads(params: Param[], step: number): void {
  params.forEach((p, i) => p.grad.set(fixture.optimizers.grads[step][i]));
}

describe('optimizers match PyTorch (tools/torch/optim_fixtures.py)', () => {
  it.each(fixture.optimizers.cases.map((c) => [c.title, c] as const))('%s', (_title, c) => {
    const params = freshParams();
    const opt = createOptimizer(c.spec, params);
    c.after.forEach((expected, step) => {
      setGrads(params, step);
      opt.step(fixture.optimizers.lrs[step]);
      params.forEach((p, i) => expectClose(p.data, expected[i], `step ${step + 1} ${p.name}`));
    });
    expect(opt.stepCount).toBe(c.after.length);
  });
});

describe('optimizer state round trip', () => {
  it.each(fixture.optimizers.cases.map((c) => [c.title, c] as const))('%s: stop after 3 steps, save, load into a fresh optimizer, continue = uninterrupted bytes', (_title, c) => {
    const steps = fixture.optimizers.lrs.length;
    const straight = freshParams();
    const a = createOptimizer(c.spec, straight);
    for (let k = 0; k < steps; k++) {
      setGrads(straight, k);
      a.step(fixture.optimizers.lrs[k]);
    }

    const first = freshParams();
    const b = createOptimizer(c.spec, first);
    for (let k = 0; k < 3; k++) {
      setGrads(first, k);
      b.step(fixture.optimizers.lrs[k]);
    }
    const saved = b.stateArrays();
    const savedParams = first.map((p) => Float32Array.from(p.data));
    const snapshot = saved.map((s) => Array.from(s.data));
    b.step(0.5); // stateArrays() returns copies: later steps must not alter what was saved
    expect(saved.map((s) => Array.from(s.data))).toEqual(snapshot);

    const resumed = freshParams();
    resumed.forEach((p, i) => p.data.set(savedParams[i]));
    const r = createOptimizer(c.spec, resumed);
    r.loadStateArrays(saved, 3);
    expect(r.stepCount).toBe(3);
    for (let k = 3; k < steps; k++) {
      setGrads(resumed, k);
      r.step(fixture.optimizers.lrs[k]);
    }
    expect(paramsToBytes(resumed)).toEqual(paramsToBytes(straight));
    expect(r.stateArrays().map((s) => Array.from(s.data))).toEqual(a.stateArrays().map((s) => Array.from(s.data)));
  });

  it('names the state arrays after the parameters', () => {
    const sgd = createOptimizer({ type: 'sgd', lr: 0.1, momentum: 0.9 }, freshParams());
    expect(sgd.stateArrays().map((s) => s.name)).toEqual(['a.weight.momentum_buffer', 'b.bias.momentum_buffer']);
    expect(createOptimizer({ type: 'sgd', lr: 0.1 }, freshParams()).stateArrays()).toEqual([]);
    const adam = createOptimizer({ type: 'adam', lr: 0.1 }, freshParams());
    expect(adam.stateArrays().map((s) => s.name)).toEqual(['a.weight.exp_avg', 'a.weight.exp_avg_sq', 'b.bias.exp_avg', 'b.bias.exp_avg_sq']);
    expect(adam.stateArrays()[0].shape).toEqual([2, 3]);
  });

  it.each([
    ['a missing key', (s: { name: string; shape: readonly number[]; data: Float32Array }[]) => s.slice(1), /missing key a.weight.exp_avg/],
    ['an unexpected key', (s: { name: string; shape: readonly number[]; data: Float32Array }[]) => [...s, { name: 'zzz', shape: [1], data: new Float32Array(1) }], /unexpected key zzz/],
    ['a wrong shape', (s: { name: string; shape: readonly number[]; data: Float32Array }[]) => [{ ...s[0], shape: [3, 2] }, ...s.slice(1)], /a.weight.exp_avg: expected shape \[2,3\], got \[3,2\]/],
  ])('loadStateArrays rejects %s', (_title, mutate, pattern) => {
    const opt = createOptimizer({ type: 'adam', lr: 0.1 }, freshParams());
    expect(() => opt.loadStateArrays(mutate(opt.stateArrays()), 1)).toThrow(pattern);
  });

  it('adamw defaults to decoupled weight decay 0.01 and adam to none', () => {
    expect(createOptimizer({ type: 'adamw', lr: 1e-3 }, []).spec).toEqual({ type: 'adamw', lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
    expect(createOptimizer({ type: 'adam', lr: 1e-3 }, []).spec).toMatchObject({ weightDecay: 0 });
  });
});

describe('optimizer spec validation', () => {
  it.each([
    ['a negative lr', { type: 'sgd', lr: -0.1 }, /optimizer.lr: must be in \[0, inf\), got -0.1/],
    ['a missing lr', { type: 'adam' }, /optimizer.lr: expected a finite number, got undefined/],
    ['momentum 1', { type: 'sgd', lr: 0.1, momentum: 1 }, /optimizer.momentum: must be in \[0, 1\), got 1/],
    ['negative momentum', { type: 'sgd', lr: 0.1, momentum: -0.5 }, /optimizer.momentum/],
    ['nesterov without momentum', { type: 'sgd', lr: 0.1, nesterov: true }, /optimizer.nesterov: Nesterov momentum requires momentum > 0 and dampening 0, got momentum 0/],
    ['nesterov with dampening', { type: 'sgd', lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }, /dampening 0.1/],
    ['an unknown type', { type: 'rmsprop', lr: 0.1 }, /optimizer.type: expected one of sgd, adam, adamw, got "rmsprop"/],
    ['an unknown field', { type: 'sgd', lr: 0.1, betas: [0.9, 0.99] }, /optimizer.betas: unknown field/],
    ['beta1 = 1', { type: 'adam', lr: 0.1, betas: [1, 0.999] }, /optimizer.betas\[0\]: must be in \[0, 1\), got 1/],
    ['betas of length 3', { type: 'adam', lr: 0.1, betas: [0.9, 0.99, 0.9] }, /optimizer.betas: expected a pair/],
    ['a string lr', { type: 'adamw', lr: '0.1' }, /optimizer.lr: expected a finite number, got "0.1"/],
    ['negative weight decay', { type: 'adamw', lr: 0.1, weightDecay: -1 }, /optimizer.weightDecay/],
    ['not an object', 'sgd', /optimizer: expected an object, got "sgd"/],
  ])('rejects %s', (_title, spec, pattern) => {
    let caught: unknown;
    try {
      createOptimizer(spec as OptimizerSpec, []);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OptimizerSpecError);
    expect((caught as Error).name).toBe('OptimizerSpecError');
    expect((caught as Error).message).toMatch(pattern);
  });

  it('rejects a non-finite or negative step lr', () => {
    const opt = createOptimizer({ type: 'sgd', lr: 0.1 }, freshParams());
    expect(() => opt.step(NaN)).toThrow(/learning rate must be a finite number >= 0, got NaN/);
    expect(() => opt.step(-1)).toThrow(/got -1/);
    expect(opt.stepCount).toBe(0);
  });

  it('rejects a parameter whose gradient has the wrong length', () => {
    const bad: Param = { name: 'w', shape: [2], data: new Float32Array(2), grad: new Float32Array(3) };
    expect(() => createOptimizer({ type: 'sgd', lr: 0.1 }, [bad])).toThrow(/w has 2 values but a gradient of 3/);
  });
});

describe('learning-rate schedules match PyTorch', () => {
  const { baseLr, totalSteps } = fixture.schedules;
  it.each(fixture.schedules.cases.map((c) => [c.title, c] as const))('%s', (_title, c) => {
    const lrs = c.lrs.map((_, step) => learningRateAt(c.spec, baseLr, step, totalSteps));
    expectClose(lrs, c.lrs, c.title);
  });
});

describe('learning-rate schedules: warm-up and validation', () => {
  it.each([
    ['constant', { type: 'constant', warmupSteps: 4 } as ScheduleSpec, [0, 0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1]],
    ['step', { type: 'step', stepSize: 2, gamma: 0.5, warmupSteps: 2 } as ScheduleSpec, [0, 0.5, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]],
  ])('%s with linear warm-up from 0', (_title, spec, expected) => {
    const lrs = expected.map((_, step) => learningRateAt(spec, 1, step, expected.length));
    expectClose(lrs, expected, 'lr');
  });

  it('cosine after warm-up starts at baseLr and decays over the remaining steps', () => {
    const spec: ScheduleSpec = { type: 'cosine', minLr: 0.1, warmupSteps: 5 };
    expect(learningRateAt(spec, 1, 5, 15)).toBeCloseTo(1, 12);
    expect(learningRateAt(spec, 1, 10, 15)).toBeCloseTo(0.1 + 0.9 * 0.5, 12); // half way through the 10 cosine steps
  });

  it('is pure: same arguments, same value', () => {
    const spec: ScheduleSpec = { type: 'onecycle' };
    expect(learningRateAt(spec, 0.3, 7, 50)).toBe(learningRateAt(spec, 0.3, 7, 50));
  });

  it.each([
    ['a step past the end', () => learningRateAt({ type: 'constant' }, 0.1, 10, 10), /step must be an integer in \[0, 10\), got 10/],
    ['a negative step', () => learningRateAt({ type: 'constant' }, 0.1, -1, 10), /got -1/],
    ['zero total steps', () => learningRateAt({ type: 'constant' }, 0.1, 0, 0), /totalSteps must be a positive integer, got 0/],
    ['warm-up as long as the run', () => learningRateAt({ type: 'constant', warmupSteps: 10 }, 0.1, 0, 10), /warmupSteps \(10\) must be less than totalSteps \(10\)/],
    ['warm-up with onecycle', () => validateScheduleSpec({ type: 'onecycle', warmupSteps: 3 }), /schedule.warmupSteps: onecycle has its own warm-up phase/],
    ['stepSize 0', () => validateScheduleSpec({ type: 'step', stepSize: 0 }), /schedule.stepSize: must be an integer in \[1, /],
    ['pctStart 1', () => validateScheduleSpec({ type: 'onecycle', pctStart: 1 }), /schedule.pctStart: must be in \(0, 1\), got 1/],
    ['an unknown type', () => validateScheduleSpec({ type: 'exp' }), /schedule.type: expected one of constant, step, cosine, onecycle/],
    ['an unknown field', () => validateScheduleSpec({ type: 'cosine', gamma: 0.1 }), /schedule.gamma: unknown field/],
    ['fractional warm-up', () => validateScheduleSpec({ type: 'cosine', warmupSteps: 1.5 }), /schedule.warmupSteps: expected an integer, got 1.5/],
  ])('rejects %s', (_title, fn, pattern) => {
    expect(fn).toThrow(OptimizerSpecError);
    expect(fn).toThrow(pattern);
  });
});
