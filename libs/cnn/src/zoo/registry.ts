// The model zoo: named, parameterised ModelSpecs. A zoo entry is only a spec; `buildModel` validates it
// and infers its shapes, so an input too small for a model fails there with the layer named.

import type { ModelSpec } from '../types.ts';
import { describeValue, FieldChecker, isPlainObject, ModelSpecError } from '../model/check.ts';
import { densenet } from './densenet.ts';
import { inception } from './inception.ts';
import { lenet5 } from './lenet5.ts';
import { localizer } from './localizer.ts';
import { resnet } from './resnet.ts';
import { unet } from './unet.ts';
import { yolo } from './yolo.ts';

/** The options every zoo model takes: the input and the number of classes. */
export interface ZooOptions {
  /** Input channels; default 1. */
  inChannels?: number;
  /** Input height; default 28. */
  height?: number;
  /** Input width; default 28. */
  width?: number;
  /** Size of the classifier output; default 10. (unet: classes per pixel; yolo: classes per box; localizer: classes besides the 4 box values.) */
  numClasses?: number;
}

/** Options some zoo models take besides `ZooOptions`; a model rejects the ones it does not use. */
export interface ZooModelOptions extends ZooOptions {
  /** Channels of the first stage, doubled at each downsampling: resnet, inception, unet, yolo, localizer. Default 16 (unet 8). */
  baseChannels?: number;
  /** densenet: channels each dense layer adds (k); default 12. */
  growthRate?: number;
  /** densenet: layers per dense block; default 4. */
  layersPerBlock?: number;
  /** unet: down/upsampling levels; default 4, or as many (at least 1) as halve the input evenly. */
  depth?: number;
  /** yolo: the side S of the output grid [5 + numClasses, S, S]; default side / 16, or the largest side / 2^k (k ≤ 4) that is an integer. */
  gridSize?: number;
}

type ExtraOption = Exclude<keyof ZooModelOptions, keyof ZooOptions>;

/** What a spec generator receives: the common options resolved, the model's own as given. */
export type ZooArgs = Required<ZooOptions> & Pick<ZooModelOptions, ExtraOption>;

interface ZooEntry {
  build: (args: ZooArgs) => ModelSpec;
  /** The extra options this model accepts. */
  options: readonly ExtraOption[];
}

const ZOO: Record<string, ZooEntry> = {
  lenet5: { build: lenet5, options: [] },
  resnet: { build: (a) => resnet(a, 1, 'resnet'), options: ['baseChannels'] },
  resnet8: { build: (a) => resnet(a, 1, 'resnet8'), options: ['baseChannels'] },
  resnet14: { build: (a) => resnet(a, 2, 'resnet14'), options: ['baseChannels'] },
  resnet20: { build: (a) => resnet(a, 3, 'resnet20'), options: ['baseChannels'] },
  densenet: { build: densenet, options: ['growthRate', 'layersPerBlock'] },
  inception: { build: inception, options: ['baseChannels'] },
  unet: { build: unet, options: ['baseChannels', 'depth'] },
  yolo: { build: yolo, options: ['baseChannels', 'gridSize'] },
  localizer: { build: localizer, options: ['baseChannels'] },
};

/** Upper bounds of the extra options (the model builder bounds the resulting sizes again). */
const EXTRA_MAX: Record<ExtraOption, number> = { baseChannels: 1024, growthRate: 256, layersPerBlock: 64, depth: 8, gridSize: 1024 };

/** Names of the zoo models, sorted. */
export function zooNames(): string[] {
  return Object.keys(ZOO).sort();
}

const check: FieldChecker = new FieldChecker((message, path) => new ModelSpecError(message, path));

/** The spec of zoo model `name` for the given input size and number of classes (and the model's own options). */
export function getZooSpec(name: string, opts: ZooModelOptions = {}): ModelSpec {
  if (typeof name !== 'string' || !Object.hasOwn(ZOO, name)) {
    throw new ModelSpecError(`zoo: unknown model ${describeValue(name)} (available: ${zooNames().join(', ')})`, 'zoo');
  }
  const entry = ZOO[name];
  if (!isPlainObject(opts)) check.fail('zoo', `options must be an object, got ${describeValue(opts)}`);
  const o = check.object(opts, 'zoo', ['inChannels', 'height', 'width', 'numClasses', ...entry.options]);
  const int = (key: keyof ZooModelOptions, dflt: number, min: number, max = 1 << 16): number => (o[key] === undefined ? dflt : check.integer(o[key], `zoo.${key}`, min, max));
  const args: ZooArgs = { inChannels: int('inChannels', 1, 1), height: int('height', 28, 1), width: int('width', 28, 1), numClasses: int('numClasses', 10, 1) };
  for (const key of entry.options) if (o[key] !== undefined) args[key] = int(key, 0, 1, EXTRA_MAX[key]);
  return entry.build(args);
}
