// The model zoo: named, parameterised ModelSpecs. A zoo entry is only a spec; `buildModel` validates it
// and infers its shapes, so an input too small for a model fails there with the layer named.

import type { ModelSpec } from '../types.ts';
import { describeValue, FieldChecker, isPlainObject, ModelSpecError } from '../model/check.ts';
import { lenet5 } from './lenet5.ts';

export interface ZooOptions {
  /** Input channels; default 1. */
  inChannels?: number;
  /** Input height; default 28. */
  height?: number;
  /** Input width; default 28. */
  width?: number;
  /** Size of the classifier output; default 10. */
  numClasses?: number;
}

const ZOO: Record<string, (opts: Required<ZooOptions>) => ModelSpec> = { lenet5 };

/** Names of the zoo models, sorted. */
export function zooNames(): string[] {
  return Object.keys(ZOO).sort();
}

const check: FieldChecker = new FieldChecker((message, path) => new ModelSpecError(message, path));

/** The spec of zoo model `name` for the given input size and number of classes. */
export function getZooSpec(name: string, opts: ZooOptions = {}): ModelSpec {
  if (typeof name !== 'string' || !Object.hasOwn(ZOO, name)) {
    throw new ModelSpecError(`zoo: unknown model ${describeValue(name)} (available: ${zooNames().join(', ')})`, 'zoo');
  }
  if (!isPlainObject(opts)) check.fail('zoo', `options must be an object, got ${describeValue(opts)}`);
  const o = check.object(opts, 'zoo', ['inChannels', 'height', 'width', 'numClasses']);
  const int = (key: keyof ZooOptions, dflt: number, min: number): number => (o[key] === undefined ? dflt : check.integer(o[key], `zoo.${key}`, min, 1 << 16));
  return ZOO[name]({ inChannels: int('inChannels', 1, 1), height: int('height', 28, 1), width: int('width', 28, 1), numClasses: int('numClasses', 10, 1) });
}
