import { buildModel, getZooSpec } from '@stride/cnn';
import { describe, expect, it } from 'vitest';
import { packState, stateLayout, unpackState } from '../src/index.ts';

describe('packState', () => {
  const model = buildModel(getZooSpec('lenet5', {}), { seed: 3 });
  const { stateLength } = stateLayout(model);

  it('packs into a given buffer the values a fresh pack holds, and returns that buffer', () => {
    const fresh = packState(model);
    const out = new Float32Array(stateLength).fill(Number.NaN);
    expect(packState(model, out)).toBe(out);
    expect(out).toEqual(fresh);
    // Written over, not added to: packing again after a change gives the new values only.
    const changed = fresh.map((v, i) => (i % 5 === 0 ? v + 1 : v));
    unpackState(model, changed);
    expect(packState(model, out)).toEqual(changed);
  });

  it('refuses a buffer of another length', () => {
    expect(() => packState(model, new Float32Array(stateLength - 1))).toThrow(new RangeError(`packState: the model holds ${stateLength} state values, out has ${stateLength - 1}`));
  });
});
