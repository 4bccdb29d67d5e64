// Moving parameter values between models, checkpoints and optimizers, keyed by name.

import type { NamedArray } from '../types.ts';

/** A named array set that does not match its target: missing, unexpected or wrongly shaped keys. */
export class ParamLoadError extends Error {
  override name = 'ParamLoadError';
  constructor(
    message: string,
    readonly key: string,
  ) {
    super(message);
  }
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Deep copies (fresh shape arrays and data), e.g. a snapshot of `model.params` before an update. */
export function copyParams(arrays: readonly NamedArray[]): NamedArray[] {
  return arrays.map((a) => ({ name: a.name, shape: [...a.shape], data: new Float32Array(a.data) }));
}

/**
 * Copies `arrays` into `targets` by name (in place, into `target.data`). Every target must get exactly one
 * array of the same shape and no array may be left over; nothing is written unless all keys match.
 * Errors name the key: "conv1.weight: expected shape [6,1,5,5], got [6,1,3,3]", "missing key fc3.bias".
 */
export function loadNamedArrays(targets: readonly NamedArray[], arrays: readonly NamedArray[]): void {
  const byName = new Map<string, NamedArray>();
  for (const a of arrays) {
    if (byName.has(a.name)) throw new ParamLoadError(`duplicate key ${a.name}`, a.name);
    byName.set(a.name, a);
  }
  const targetNames = new Set(targets.map((t) => t.name));
  for (const a of arrays) {
    if (!targetNames.has(a.name)) throw new ParamLoadError(`unexpected key ${a.name}`, a.name);
  }
  for (const t of targets) {
    const a = byName.get(t.name);
    if (a === undefined) throw new ParamLoadError(`missing key ${t.name}`, t.name);
    if (!sameShape(t.shape, a.shape)) throw new ParamLoadError(`${t.name}: expected shape [${t.shape.join(',')}], got [${a.shape.join(',')}]`, t.name);
    if (a.data.length !== t.data.length) {
      throw new ParamLoadError(`${t.name}: expected ${t.data.length} values, got ${a.data.length}`, t.name);
    }
  }
  for (const t of targets) t.data.set(byName.get(t.name)!.data);
}
