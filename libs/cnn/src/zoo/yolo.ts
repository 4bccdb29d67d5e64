// A small single-shot grid detector after YOLO (Redmon et al. 2016, "You Only Look Once").
//
// Backbone: k stages of conv3×3 → bn → leaky relu (slope 0.1, the paper's) → max pool 2×2, with
// w, 2w, 4w, ... channels (w = baseChannels, default 16, at most 8w), taking the square input of
// side L down to the S×S grid, L = S·2^k; then two conv3×3 → bn → leaky relu with 8w channels.
// Head: a 1×1 conv with linear output [5 + C, S, S]: per cell objectness, box (x, y offsets in
// the cell, √w, √h relative to the image, all through a sigmoid) and C class logits, one box per
// cell (B = 1). See vision/yolo.ts for the encoding, the loss and the decoding.
//
// Differences from the paper: a fully convolutional head (1×1 conv per cell, as from YOLOv2 on)
// in place of v1's two fully connected layers, batch norm after every backbone conv, B = 1.

import type { ModelSpec } from '../types.ts';
import { YOLO_BOX_CHANNELS } from '../vision/yolo.ts';
import { SpecBuilder, zooFail } from './builder.ts';
import type { ZooArgs } from './registry.ts';

/** The number of 2× poolings that take `side` down to the grid side (default: up to 4, as many as divide evenly). */
function poolsToGrid(side: number, gridSize: number | undefined): number {
  if (gridSize === undefined) {
    let pools = 0;
    while (pools < 4 && side % 2 ** (pools + 1) === 0) pools++;
    return pools;
  }
  const pools = Math.log2(side / gridSize);
  if (!Number.isInteger(pools) || pools < 0) zooFail('gridSize', `yolo needs the input side ${side} to be gridSize ${gridSize} times a power of 2`);
  return pools;
}

/** Appends the detection head (1×1 conv to 5 + C channels) reading the builder's head. */
function yoloHead(b: SpecBuilder, numClasses: number): string {
  return b.add('head', { type: 'conv2d', outChannels: YOLO_BOX_CHANNELS + numClasses, kernelSize: 1 });
}

export function yolo(a: ZooArgs): ModelSpec {
  const { height, width } = a;
  if (height !== width) zooFail('width', `yolo needs a square input for its S×S grid, got ${height}x${width}`);
  const w = a.baseChannels ?? 16;
  const pools = poolsToGrid(height, a.gridSize);
  const b = new SpecBuilder();
  const lrelu = { act: 'leakyRelu' } as const;
  for (let stage = 0; stage < pools; stage++) {
    b.convBn(`c${stage + 1}`, w * 2 ** Math.min(stage, 3), 3, lrelu);
    b.add(`pool${stage + 1}`, { type: 'maxPool2d', kernelSize: 2 });
  }
  b.convBn('neck1', 8 * w, 3, lrelu);
  b.convBn('neck2', 8 * w, 3, lrelu);
  yoloHead(b, a.numClasses);
  return b.build('yolo', [a.inChannels, height, width], 'he-xavier');
}
