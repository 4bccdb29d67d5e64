import { describe, expect, it } from 'vitest';
import { checkForm, fieldOfPath } from '../src/pages/submit.ts';

const valid = { name: '', model: 'lenet5', dataset: 'mnist', length: '1', unit: 'epochs' as const, batchSize: '64', shards: '4', optimizer: 'adam', lr: '0.003', seed: '1', numerics: 'exact' };

describe('checkForm (the engine rules, in the browser)', () => {
  it('builds the spec of a valid form, leaving the name to its default', () => {
    expect(checkForm(valid)).toEqual({
      errors: {},
      spec: { model: 'lenet5', dataset: 'mnist', epochs: 1, batchSize: 64, shards: 4, seed: 1, optimizer: { type: 'adam', lr: 0.003 } },
    });
    expect(checkForm({ ...valid, name: ' run A ', unit: 'steps', length: '30' }).spec).toMatchObject({ name: 'run A', steps: 30 });
    // 'fma' numerics go into the spec; 'exact' (the default) stays out of it.
    expect(checkForm({ ...valid, numerics: 'fma' }).spec).toMatchObject({ numerics: 'fma' });
    expect(checkForm(valid).spec).not.toHaveProperty('numerics');
  });

  for (const [field, patch, message] of [
    ['batchSize', { batchSize: '0' }, 'must be an integer in [1, 65536], got 0'],
    ['batchSize', { batchSize: '12.5' }, 'must be an integer in [1, 65536], got 12.5'],
    ['shards', { shards: '65' }, 'must be an integer in [1, 64], got 65'],
    ['length', { length: '' }, 'must be an integer in [1, 10000], got nothing'],
    ['length', { unit: 'steps', length: '1e3' }, 'must be an integer in [1, 100000000], got 1e3'],
    ['seed', { seed: '-1' }, 'must be an integer in [0, 4294967295], got -1'],
    ['lr', { lr: '0' }, 'must be a finite number > 0, got 0'],
    ['lr', { lr: 'fast' }, 'must be a finite number > 0, got "fast"'],
    ['optimizer', { optimizer: 'rmsprop' }, 'must be one of sgd, adam, adamw, got "rmsprop"'],
    ['name', { name: '   ' }, 'must not be blank (leave it empty for the default name)'],
    ['numerics', { numerics: 'turbo' }, `must be 'exact' or 'fma', got "turbo"`],
  ] as const) {
    it(`${field} ${JSON.stringify(patch)} → ${message}`, () => {
      const r = checkForm({ ...valid, ...patch });
      expect(r.spec).toBeUndefined();
      expect(r.errors).toEqual({ [field]: message });
    });
  }
});

describe('fieldOfPath (server errors to form fields)', () => {
  it('maps spec paths to the field that edits them', () => {
    expect(fieldOfPath('batchSize')).toBe('batchSize');
    expect(fieldOfPath('steps')).toBe('length');
    expect(fieldOfPath('epochs')).toBe('length');
    expect(fieldOfPath('optimizer.lr')).toBe('lr');
    expect(fieldOfPath('optimizer.momentum')).toBe('optimizer');
    expect(fieldOfPath('model.layers[2].stride')).toBe('model');
    expect(fieldOfPath('numerics')).toBe('numerics');
    expect(fieldOfPath('schedule.type')).toBeUndefined();
    expect(fieldOfPath(undefined)).toBeUndefined();
  });
});
