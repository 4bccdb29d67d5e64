// U-Net (Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation").
//
// Encoder: at each of `depth` levels two conv3×3 → bn → relu, then max pool 2×2; channels w, 2w, 4w, ...
// (w = baseChannels, default 8). depth defaults to 4 (the paper's), or as many levels as halve the input
// evenly: each level doubles the receptive field, and a pixel's class depends on the whole digit
// around it (measured on mnist-segmentation: after 600 steps of 8, depth 3 still predicted every
// pixel as background, depth 4 had started to tell the digits apart). Bottleneck: two convs with w·2^depth channels. Decoder, level by level
// back up: a 2×2 stride-2 transposed conv ("up-conv") halving the channels, concatenated with the
// encoder features of the same level (the skip connection), two conv3×3 → bn → relu. A 1×1 conv
// maps the last features to one logit per class and pixel: output [numClasses, H, W].
//
// Differences from the paper, for small inputs: 'same' padding instead of unpadded convs, so the
// output has the input's size and the skip features need no cropping; batch norm after every conv.
// Height and width must be divisible by 2^depth.

import type { ModelSpec } from '../types.ts';
import { SpecBuilder, zooFail } from './builder.ts';
import type { ZooArgs } from './registry.ts';

/** How many times both sides can be halved evenly, up to `max`. */
function halvings(h: number, w: number, max: number): number {
  let k = 0;
  while (k < max && h % 2 ** (k + 1) === 0 && w % 2 ** (k + 1) === 0) k++;
  return k;
}

/** Appends one decoder level: up-conv from the head, concat with `skip`, two convs. Returns the output node. */
export function unetUpLevel(b: SpecBuilder, prefix: string, skip: string, channels: number): string {
  const up = b.add(`${prefix}_up`, { type: 'convTranspose2d', outChannels: channels, kernelSize: 2, stride: 2 });
  b.add(`${prefix}_cat`, { type: 'concat' }, [skip, up]);
  b.convBn(`${prefix}_a`, channels, 3);
  return b.convBn(`${prefix}_b`, channels, 3);
}

export function unet(a: ZooArgs): ModelSpec {
  const w = a.baseChannels ?? 8;
  const { height, width } = a;
  const depth = a.depth ?? halvings(height, width, 4);
  if (depth < 1) zooFail('height', `unet needs even height and width to downsample, got ${height}x${width}`);
  if (height % 2 ** depth !== 0 || width % 2 ** depth !== 0) {
    zooFail('depth', `unet with depth ${depth} needs height and width divisible by ${2 ** depth}, got ${height}x${width}`);
  }
  const b = new SpecBuilder();
  const skips: string[] = [];
  for (let level = 0; level < depth; level++) {
    b.convBn(`enc${level}_a`, w * 2 ** level, 3);
    skips.push(b.convBn(`enc${level}_b`, w * 2 ** level, 3));
    b.add(`down${level}`, { type: 'maxPool2d', kernelSize: 2 });
  }
  b.convBn('bottleneck_a', w * 2 ** depth, 3);
  b.convBn('bottleneck_b', w * 2 ** depth, 3);
  for (let level = depth - 1; level >= 0; level--) unetUpLevel(b, `dec${level}`, skips[level], w * 2 ** level);
  b.add('head', { type: 'conv2d', outChannels: a.numClasses, kernelSize: 1 });
  return b.build('unet', [a.inChannels, height, width], 'he-xavier');
}
