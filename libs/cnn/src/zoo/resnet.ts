// CIFAR-style ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition", §4.2).
//
// A 3×3 conv stem with w channels, then three stages of n basic residual blocks with w, 2w and 4w
// channels (w = baseChannels, 16 by default as in the paper), the first block of stages 2 and 3
// halving the resolution; global average pooling; one fully connected layer. 6n + 2 weighted
// layers: resnet8 (n = 1), resnet14 (n = 2), resnet20 (n = 3).
//
// Basic block:  x ─ conv3×3(stride) ─ bn ─ relu ─ conv3×3 ─ bn ─ add ─ relu
//                └──────────── shortcut ───────────────────┘
// The shortcut is the identity, or where the shape changes a 1×1 stride-2 conv + bn projection (the
// paper's option B; its CIFAR runs used option A, zero-padded identity, which has no layer here).
// Convs before batch norm have no bias. Weights use He initialisation, as in the paper.

import type { ModelSpec } from '../types.ts';
import { SpecBuilder } from './builder.ts';
import type { ZooArgs } from './registry.ts';

/** Appends one basic residual block reading the builder's head; returns its output node. */
export function residualBlock(b: SpecBuilder, prefix: string, inChannels: number, outChannels: number, stride: number): string {
  const input = b.head;
  b.convBn(`${prefix}_1`, outChannels, 3, { stride });
  const main = b.convBn(`${prefix}_2`, outChannels, 3, { act: 'none' });
  const shortcut = stride !== 1 || inChannels !== outChannels ? b.convBn(`${prefix}_proj`, outChannels, 1, { stride, act: 'none' }, input) : input;
  b.add(`${prefix}_add`, { type: 'add' }, [main, shortcut]);
  return b.add(`${prefix}_relu`, { type: 'relu' });
}

/** ResNet-(6n + 2) for the given input and classes. */
export function resnet(a: ZooArgs, n: number, name: string): ModelSpec {
  const w = a.baseChannels ?? 16;
  const b = new SpecBuilder();
  b.convBn('stem', w, 3);
  let channels = w;
  for (let stage = 1; stage <= 3; stage++) {
    const out = w * 2 ** (stage - 1);
    for (let block = 1; block <= n; block++) {
      residualBlock(b, `s${stage}b${block}`, channels, out, stage > 1 && block === 1 ? 2 : 1);
      channels = out;
    }
  }
  b.add('gap', { type: 'globalAvgPool2d' });
  b.add('flatten', { type: 'flatten' });
  b.add('fc', { type: 'linear', outFeatures: a.numClasses });
  return b.build(name, [a.inChannels, a.height, a.width], 'he-xavier');
}
