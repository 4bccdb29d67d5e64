import { describe, expect, it } from 'vitest';
import { canonicalJson, JobSpecError, jobSpecHash, normalizeJobSpec, totalStepsOf } from '../src/index.ts';

const base = { model: 'lenet5', dataset: 'mnist' };

function errorOf(input: unknown): JobSpecError {
  try {
    normalizeJobSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(JobSpecError);
    return err as JobSpecError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('normalizeJobSpec', () => {
  it('fills every default', () => {
    const spec = normalizeJobSpec(base);
    expect(spec).toEqual({
      name: 'lenet5-mnist',
      model: 'lenet5',
      dataset: 'mnist',
      epochs: 1,
      batchSize: 64,
      shards: 4,
      seed: 1,
      optimizer: { type: 'adam', lr: 3e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 },
      schedule: { type: 'onecycle', pctStart: 0.3, divFactor: 25, finalDivFactor: 1e4, warmupSteps: 0 },
      evalEvery: 'epoch',
      evalShards: 10,
      evalSamples: 0,
      checkpointEvery: 100,
      keepCheckpoints: 3,
    });
  });

  it('is idempotent, and equal specs hash equal whatever the key order', () => {
    const a = normalizeJobSpec({ ...base, steps: 10, optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 } });
    expect(normalizeJobSpec(a)).toEqual(a);
    const b = normalizeJobSpec({ optimizer: { momentum: 0.9, lr: 0.1, type: 'sgd' }, steps: 10, dataset: 'mnist', model: 'lenet5' });
    expect(canonicalJson(b)).toBe(canonicalJson(a));
    expect(jobSpecHash(b)).toBe(jobSpecHash(a));
    expect(jobSpecHash(normalizeJobSpec({ ...base, steps: 11 }))).not.toBe(jobSpecHash(a));
  });

  it('keeps steps or epochs and computes the total steps with a short last batch', () => {
    expect(totalStepsOf(normalizeJobSpec({ ...base, steps: 7 }), 60_000)).toBe(7);
    expect(totalStepsOf(normalizeJobSpec({ ...base, epochs: 2 }), 60_000)).toBe(2 * 938);
  });

  it('accepts an inline model spec and checks it against the dataset', () => {
    const model = { input: [1, 28, 28], layers: [{ type: 'flatten' }, { type: 'linear', outFeatures: 10 }] };
    expect(normalizeJobSpec({ ...base, model }).model).toEqual(model);
    expect(errorOf({ ...base, model: { ...model, input: [3, 32, 32] } }).path).toBe('model.input');
    expect(errorOf({ ...base, model: { input: [1, 28, 28], layers: [{ type: 'flatten' }, { type: 'linear', outFeatures: 7 }] } }).message).toMatch(/10 class scores/);
    expect(errorOf({ ...base, model: { input: [1, 28, 28], layers: [{ type: 'conv2d', outChannels: 0, kernelSize: 3 }] } }).path).toMatch(/^model\.layers\[0\]\.outChannels/);
    expect(errorOf({ ...base, model: 'lenet6' }).message).toMatch(/unknown zoo model "lenet6"/);
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ['a NaN learning rate', { optimizer: { type: 'adam', lr: NaN } }, 'optimizer.lr', /must be a finite number > 0, got NaN/],
    ['a zero learning rate', { optimizer: { type: 'sgd', lr: 0 } }, 'optimizer.lr', /> 0, got 0/],
    ['an unknown optimizer', { optimizer: { type: 'rmsprop', lr: 1 } }, 'optimizer.type', /rmsprop/],
    ['a bad beta', { optimizer: { type: 'adam', lr: 1e-3, betas: [0.9, 1.5] } }, 'optimizer.betas[1]', /1.5/],
    ['an unknown schedule', { schedule: { type: 'exp' } }, 'schedule.type', /exp/],
    ['an unknown schedule field', { schedule: { type: 'cosine', gamma: 2 } }, 'schedule.gamma', /unknown field/],
    ['an unknown dataset', { dataset: 'cifar' }, 'dataset', /mnist, fashion-mnist, mnist-localization, mnist-detection, mnist-segmentation, got "cifar"/],
    ['both epochs and steps', { epochs: 1, steps: 3 }, 'steps', /not both/],
    ['fractional epochs', { epochs: 1.5 }, 'epochs', /integer.*got 1.5/],
    ['zero steps', { steps: 0 }, 'steps', /got 0/],
    ['a batch size of 0', { batchSize: 0 }, 'batchSize', /got 0/],
    ['more shards than samples', { batchSize: 8, shards: 9 }, 'shards', /\[1, 8\], got 9/],
    ['a negative seed', { seed: -1 }, 'seed', /got -1/],
    ['a string evalEvery', { evalEvery: 'often' }, 'evalEvery', /"often"/],
    ['keepCheckpoints 0', { keepCheckpoints: 0 }, 'keepCheckpoints', /got 0/],
    ['an empty name', { name: '  ' }, 'name', /non-empty/],
    ['an unknown field', { learningRate: 1 }, 'learningRate', /unknown field/],
    ['a model of the wrong type', { model: 5 }, 'model', /got 5/],
  ];
  it.each(bad)('rejects %s, naming %s', (_title, patch, path, message) => {
    const err = errorOf({ ...base, ...patch });
    expect(err.path).toBe(path);
    expect(err.message.startsWith(`${path}: `)).toBe(true);
    expect(err.message).toMatch(message);
    expect(err.name).toBe('JobSpecError');
  });

  it('rejects __proto__ and constructor keys anywhere, as parsed from JSON', () => {
    expect(errorOf(JSON.parse('{"model":"lenet5","dataset":"mnist","__proto__":{"polluted":1}}')).path).toBe('__proto__');
    expect(errorOf(JSON.parse('{"model":"lenet5","dataset":"mnist","optimizer":{"type":"adam","lr":1,"constructor":{}}}')).path).toBe('optimizer.constructor');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("takes numerics 'fma' (kept) or 'exact' (the default, left out), nothing else", () => {
    expect(normalizeJobSpec({ model: 'lenet5', dataset: 'mnist', numerics: 'fma' }).numerics).toBe('fma');
    expect('numerics' in normalizeJobSpec({ model: 'lenet5', dataset: 'mnist', numerics: 'exact' })).toBe(false);
    expect(() => normalizeJobSpec({ model: 'lenet5', dataset: 'mnist', numerics: 'fast' as never })).toThrow(/numerics: must be 'exact' or 'fma', got "fast"/);
  });

  it('rejects non-objects', () => {
    expect(errorOf(null).message).toMatch(/must be an object, got null/);
    expect(errorOf([base]).message).toMatch(/array/);
  });
});
