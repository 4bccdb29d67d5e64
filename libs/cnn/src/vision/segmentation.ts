// Semantic segmentation: per-pixel classes from logits [N, K, H, W] against masks [N, H, W].
//
// Loss: per-pixel softmax cross-entropy, averaged over each image's pixels, then summed (default,
// what a shard returns) or averaged over the images. Averaging per image keeps the loss scale of a
// classifier's, whatever the image size.
// Metrics come from a K×K confusion matrix (rows: true class, columns: predicted class) that
// shards add up: pixel accuracy = trace / total; IoU of class k = TP / (TP + FP + FN); mean IoU
// averages over the classes that occur in the truth or in the prediction (a class absent from
// both has no defined IoU; one predicted but absent from the truth scores 0).

import { assert, assertRange, fmt } from '../assert.ts';
import { scale } from '../ops/elementwise.ts';
import { crossEntropy } from '../ops/loss.ts';
import type { Tensor } from '../tensor.ts';

export interface SegmentationLossOptions {
  /** 'sum' (default): per-image mean losses summed over the images; 'mean': averaged over them. */
  reduction?: 'sum' | 'mean';
}

function dims(op: string, logits: Tensor, masks: ArrayLike<number>): [number, number, number] {
  assert(logits.shape.length === 4 && logits.shape[1] >= 2, () => `${op}: logits must be [N, K, H, W] with K >= 2 classes, got ${fmt(logits.shape)}`);
  const [n, k, h, w] = logits.shape;
  assert(masks.length === n * h * w, () => `${op}: masks hold ${masks.length} labels, logits ${fmt(logits.shape)} need ${n * h * w} ([${n}, ${h}, ${w}])`);
  return [n, k, h * w];
}

/** Per-pixel cross-entropy of logits [N, K, H, W] against class masks [N·H·W] in [0, K): a scalar tensor. */
export function segmentationLoss(logits: Tensor, masks: ArrayLike<number>, opts: SegmentationLossOptions = {}): Tensor {
  const op = 'segmentationLoss';
  const [n, , hw] = dims(op, logits, masks);
  const reduction = opts.reduction ?? 'sum';
  assertRange(reduction === 'sum' || reduction === 'mean', () => `${op}: reduction must be 'sum' or 'mean', got ${String(reduction)}`);
  const total = crossEntropy(logits, masks, { reduction: 'sum' });
  return scale(total, reduction === 'mean' ? 1 / (n * hw) : 1 / hw);
}

/**
 * Adds the arg-max prediction of every pixel to a K×K confusion matrix (row-major, `[truth·K +
 * predicted]`): a new one, or `into` to accumulate over batches and shards.
 */
export function segmentationConfusion(logits: Tensor, masks: ArrayLike<number>, into?: Float64Array): Float64Array {
  const op = 'segmentationConfusion';
  const [n, k, hw] = dims(op, logits, masks);
  const confusion = into ?? new Float64Array(k * k);
  assert(confusion.length === k * k, () => `${op}: the confusion matrix has ${confusion.length} cells, ${k} classes need ${k * k}`);
  const d = logits.data;
  for (let b = 0; b < n; b++) {
    const base = b * k * hw;
    for (let p = 0; p < hw; p++) {
      const truth = masks[b * hw + p];
      assertRange(Number.isInteger(truth) && truth >= 0 && truth < k, () => `${op}: mask value ${truth} at image ${b} pixel ${p} is not a class in [0, ${k})`);
      // Class c of this pixel is d[base + c·hw + p].
      let best = 0;
      let max = d[base + p];
      for (let c = 1, e = base + hw + p; c < k; c++, e += hw) {
        if (d[e] > max) {
          max = d[e];
          best = c;
        }
      }
      confusion[truth * k + best]++;
    }
  }
  return confusion;
}

export interface SegmentationMetrics {
  /** Correctly classified pixels / all pixels. */
  pixelAccuracy: number;
  /** Mean of the defined per-class IoUs; 0 when none is defined. */
  meanIou: number;
  /** IoU per class, null for a class absent from both truth and prediction. */
  classIou: (number | null)[];
}

/** Pixel accuracy and IoUs from a K×K confusion matrix (see `segmentationConfusion`). */
export function segmentationMetrics(confusion: ArrayLike<number>, numClasses: number): SegmentationMetrics {
  const k = numClasses;
  assertRange(Number.isInteger(k) && k >= 1 && confusion.length === k * k, () => `segmentationMetrics: a confusion matrix of ${confusion.length} cells does not fit ${k} classes (${k * k} cells)`);
  let total = 0;
  let correct = 0;
  const classIou: (number | null)[] = [];
  for (let c = 0; c < k; c++) {
    let truth = 0; // row sum: pixels of class c
    let predicted = 0; // column sum: pixels predicted as c
    for (let j = 0; j < k; j++) {
      truth += confusion[c * k + j];
      predicted += confusion[j * k + c];
    }
    const tp = confusion[c * k + c];
    total += truth;
    correct += tp;
    const union = truth + predicted - tp;
    classIou.push(union > 0 ? tp / union : null);
  }
  const defined = classIou.filter((v): v is number => v !== null);
  return {
    pixelAccuracy: total > 0 ? correct / total : 0,
    meanIou: defined.length > 0 ? defined.reduce((s, v) => s + v, 0) / defined.length : 0,
    classIou,
  };
}
