// A small GoogLeNet (Szegedy et al. 2015, "Going Deeper with Convolutions") built from Inception
// modules, with batch norm after every conv as in torchvision's GoogLeNet.
//
// Inception module: four parallel branches on the same input, concatenated along channels:
//   1×1 conv | 1×1 reduce → 3×3 conv | 1×1 reduce → 5×5 conv | 3×3 max pool (stride 1) → 1×1 proj
// The 1×1 reductions are the module's point: they shrink the channels before the costly 3×3 and
// 5×5 convs. Every conv is conv (no bias) → bn → relu.
//
// Network: conv3×3 stem → max pool 3×3/2 → modules 3a, 3b → max pool 3×3/2 → module 4a → global
// average pool → fc. The module widths are GoogLeNet's (Table 1) scaled by baseChannels / 64, so the
// default baseChannels = 16 gives 3a = 16 | 24→32 | 4→8 | 8 (64 channels out) against the paper's
// 64 | 96→128 | 16→32 | 32 (256). The stem has 3·baseChannels channels (GoogLeNet's 192 at 64).
// Dropout before the classifier and the auxiliary classifiers are left out: they regularise long
// ImageNet runs, not minutes of MNIST.

import type { ModelSpec } from '../types.ts';
import { SpecBuilder } from './builder.ts';
import type { ZooArgs } from './registry.ts';

/** Branch widths of one module: 1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection. */
export type InceptionWidths = readonly [c1: number, c3r: number, c3: number, c5r: number, c5: number, pool: number];

/** GoogLeNet's modules 3a, 3b and 4a (Table 1). */
const GOOGLENET: Record<'3a' | '3b' | '4a', InceptionWidths> = {
  '3a': [64, 96, 128, 16, 32, 32],
  '3b': [128, 128, 192, 32, 96, 64],
  '4a': [192, 96, 208, 16, 48, 64],
};

/** Appends an Inception module reading the builder's head; returns its output channels. */
export function inceptionModule(b: SpecBuilder, prefix: string, [c1, c3r, c3, c5r, c5, pool]: InceptionWidths): number {
  const input = b.head;
  const b1 = b.convBn(`${prefix}_b1`, c1, 1, {}, input);
  b.convBn(`${prefix}_b2r`, c3r, 1, {}, input);
  const b2 = b.convBn(`${prefix}_b2`, c3, 3);
  b.convBn(`${prefix}_b3r`, c5r, 1, {}, input);
  const b3 = b.convBn(`${prefix}_b3`, c5, 5);
  b.add(`${prefix}_b4pool`, { type: 'maxPool2d', kernelSize: 3, stride: 1, padding: 1 }, input);
  const b4 = b.convBn(`${prefix}_b4`, pool, 1);
  b.add(`${prefix}_cat`, { type: 'concat' }, [b1, b2, b3, b4]);
  return c1 + c3 + c5 + pool;
}

export function inception(a: ZooArgs): ModelSpec {
  const base = a.baseChannels ?? 16;
  const scaled = (w: InceptionWidths): InceptionWidths => w.map((c) => Math.max(1, Math.round((c * base) / 64))) as unknown as InceptionWidths;
  const b = new SpecBuilder();
  b.convBn('stem', 3 * base, 3);
  b.add('pool1', { type: 'maxPool2d', kernelSize: 3, stride: 2, padding: 1 });
  inceptionModule(b, 'i3a', scaled(GOOGLENET['3a']));
  inceptionModule(b, 'i3b', scaled(GOOGLENET['3b']));
  b.add('pool2', { type: 'maxPool2d', kernelSize: 3, stride: 2, padding: 1 });
  inceptionModule(b, 'i4a', scaled(GOOGLENET['4a']));
  b.add('gap', { type: 'globalAvgPool2d' });
  b.add('flatten', { type: 'flatten' });
  b.add('fc', { type: 'linear', outFeatures: a.numClasses });
  return b.build('inception', [a.inChannels, a.height, a.width], 'he-xavier');
}
