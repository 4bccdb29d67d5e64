// DenseNet (Huang et al. 2017, "Densely Connected Convolutional Networks"), the CIFAR layout.
//
// A 3×3 conv stem with 2k channels, then three dense blocks of L layers joined by two transition
// layers; batch norm, relu, global average pooling, one fully connected layer. k = growthRate
// (default 12, the paper's), L = layersPerBlock (default 4, small enough to train in minutes).
//
// Dense layer: bn → relu → conv3×3 with k outputs, concatenated to its input, so every layer of a
// block reads the block input and the outputs of all the layers before it:
//     x_ℓ = concat(x_{ℓ−1}, H_ℓ(x_{ℓ−1})) = concat(x_0, H_1(·), ..., H_ℓ(·))
// Transition: bn → relu → conv1×1 → avgpool 2×2, halving the channels (compression θ = 0.5, the
// paper's DenseNet-C) and the resolution. Convs have no bias (batch norm follows or precedes them
// with its own shift); weights use He initialisation.

import type { ModelSpec } from '../types.ts';
import { SpecBuilder } from './builder.ts';
import type { ZooArgs } from './registry.ts';

/** Appends a dense block of `layers` layers reading the builder's head; returns its output channels. */
export function denseBlock(b: SpecBuilder, prefix: string, inChannels: number, layers: number, growthRate: number): number {
  let features = b.head;
  let channels = inChannels;
  for (let l = 1; l <= layers; l++) {
    b.add(`${prefix}_l${l}_bn`, { type: 'batchNorm2d' }, features);
    b.add(`${prefix}_l${l}_relu`, { type: 'relu' });
    const fresh = b.add(`${prefix}_l${l}_conv`, { type: 'conv2d', outChannels: growthRate, kernelSize: 3, padding: 1, bias: false });
    features = b.add(`${prefix}_cat${l}`, { type: 'concat' }, [features, fresh]);
    channels += growthRate;
  }
  return channels;
}

/** Appends a transition layer (bn, relu, conv1×1 to `outChannels`, avgpool 2). */
export function transition(b: SpecBuilder, prefix: string, outChannels: number): void {
  b.add(`${prefix}_bn`, { type: 'batchNorm2d' });
  b.add(`${prefix}_relu`, { type: 'relu' });
  b.add(`${prefix}_conv`, { type: 'conv2d', outChannels, kernelSize: 1, bias: false });
  b.add(`${prefix}_pool`, { type: 'avgPool2d', kernelSize: 2 });
}

export function densenet(a: ZooArgs): ModelSpec {
  const k = a.growthRate ?? 12;
  const layers = a.layersPerBlock ?? 4;
  const b = new SpecBuilder();
  let channels = 2 * k;
  b.add('stem_conv', { type: 'conv2d', outChannels: channels, kernelSize: 3, padding: 1, bias: false });
  for (let block = 1; block <= 3; block++) {
    channels = denseBlock(b, `d${block}`, channels, layers, k);
    if (block < 3) {
      channels = Math.floor(channels / 2);
      transition(b, `t${block}`, channels);
    }
  }
  b.add('final_bn', { type: 'batchNorm2d' });
  b.add('final_relu', { type: 'relu' });
  b.add('gap', { type: 'globalAvgPool2d' });
  b.add('flatten', { type: 'flatten' });
  b.add('fc', { type: 'linear', outFeatures: a.numClasses });
  return b.build('densenet', [a.inChannels, a.height, a.width], 'he-xavier');
}
