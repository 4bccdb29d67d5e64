// Classification with localization: one object per image, its class and its box.
//
// The head outputs [N, C + 4]: C class logits, then t_cx, t_cy, t_w, t_h with the box
// (cx, cy, w, h) = σ(t) in (0, 1), normalised to the image (see box.ts). Loss per image:
//   CrossEntropy(class logits, class) + λ · Σ_4 coords (σ(t) − box)²
// λ = 5 by default (YOLO's λcoord; squared errors of coordinates in [0, 1] are small next to a
// cross-entropy of ~2.3 at the start). Metrics are kept as sums so that shards can add them up.

import { assert, assertRange, fmt } from '../assert.ts';
import { add, scale, sigmoid, sigmoidScalar } from '../ops/elementwise.ts';
import { crossEntropy, mse } from '../ops/loss.ts';
import { fromData, type Tensor } from '../tensor.ts';
import { boxAt, boxIou, type Detection } from './box.ts';
import { narrow } from './narrow.ts';

export interface LocalizationLossOptions {
  /** Weight of the box error; default 5. */
  lambdaBox?: number;
  /** 'sum' (default): summed over the images, what a shard returns; 'mean': divided by N. */
  reduction?: 'sum' | 'mean';
}

/** Checks a head output against [N, C + 4] and returns (N, C). */
function headDims(op: string, output: Tensor): [number, number] {
  assert(output.shape.length === 2 && output.shape[1] > 4, () => `${op}: output must be [N, C + 4] with C >= 1, got ${fmt(output.shape)}`);
  return [output.shape[0], output.shape[1] - 4];
}

function checkTargets(op: string, n: number, labels: ArrayLike<number>, boxes: ArrayLike<number>): void {
  assert(labels.length === n && boxes.length === 4 * n, () => `${op}: ${n} outputs need ${n} labels and ${4 * n} box values, got ${labels.length} and ${boxes.length}`);
}

/**
 * The localization loss (see the top of this file) of a head output [N, C + 4], class labels [N]
 * and boxes [N·4] (cx, cy, w, h per image): a scalar tensor.
 */
export function localizationLoss(output: Tensor, labels: ArrayLike<number>, boxes: ArrayLike<number>, opts: LocalizationLossOptions = {}): Tensor {
  const op = 'localizationLoss';
  const [n, c] = headDims(op, output);
  checkTargets(op, n, labels, boxes);
  const lambdaBox = opts.lambdaBox ?? 5;
  const reduction = opts.reduction ?? 'sum';
  assertRange(lambdaBox >= 0, () => `${op}: lambdaBox must be >= 0, got ${lambdaBox}`);
  assertRange(reduction === 'sum' || reduction === 'mean', () => `${op}: reduction must be 'sum' or 'mean', got ${String(reduction)}`);
  const classification = crossEntropy(narrow(output, 1, 0, c), labels, { reduction: 'sum' });
  const box = mse(sigmoid(narrow(output, 1, c, 4)), fromData(Float32Array.from(boxes), [n, 4]), { reduction: 'sum' });
  const total = add(classification, scale(box, lambdaBox));
  return reduction === 'mean' ? scale(total, 1 / n) : total;
}

/** Each image's predicted class (arg-max logit, score = its softmax probability) and box. */
export function decodeLocalization(output: Tensor): Detection[] {
  const [n, c] = headDims('decodeLocalization', output);
  const d = output.data;
  const row = c + 4;
  const out: Detection[] = [];
  for (let b = 0; b < n; b++) {
    const o = b * row;
    let best = 0;
    for (let k = 1; k < c; k++) if (d[o + k] > d[o + best]) best = k;
    let z = 0;
    for (let k = 0; k < c; k++) z += Math.exp(d[o + k] - d[o + best]);
    const box = { cx: sigmoidScalar(d[o + c]), cy: sigmoidScalar(d[o + c + 1]), w: sigmoidScalar(d[o + c + 2]), h: sigmoidScalar(d[o + c + 3]) };
    out.push({ classId: best, score: 1 / z, box });
  }
  return out;
}

/** Sums over images, so the counts of several shards add up. */
export interface LocalizationCounts {
  count: number;
  /** Σ IoU(predicted box, true box). */
  iouSum: number;
  /** Images whose class is right. */
  classCorrect: number;
  /** Images whose class is right AND whose box has IoU ≥ 0.5 with the true box. */
  correct: number;
}

/** Counts for the localization metrics of a head output [N, C + 4] against labels [N] and boxes [N·4]. */
export function localizationCounts(output: Tensor, labels: ArrayLike<number>, boxes: ArrayLike<number>): LocalizationCounts {
  const op = 'localizationCounts';
  const [n] = headDims(op, output);
  checkTargets(op, n, labels, boxes);
  const counts: LocalizationCounts = { count: n, iouSum: 0, classCorrect: 0, correct: 0 };
  decodeLocalization(output).forEach((d, b) => {
    const iou = boxIou(d.box, boxAt(boxes, b));
    counts.iouSum += iou;
    if (d.classId === labels[b]) {
      counts.classCorrect++;
      if (iou >= 0.5) counts.correct++;
    }
  });
  return counts;
}

export interface LocalizationMetrics {
  /** Mean IoU of the predicted boxes with the true ones. */
  meanIou: number;
  /** Localization accuracy: class right and IoU ≥ 0.5. */
  accuracy: number;
  /** Classification accuracy alone. */
  classAccuracy: number;
}

/** Metrics from (possibly summed) counts; all 0 for zero images. */
export function localizationMetrics(counts: LocalizationCounts): LocalizationMetrics {
  const n = counts.count;
  if (n === 0) return { meanIou: 0, accuracy: 0, classAccuracy: 0 };
  return { meanIou: counts.iouSum / n, accuracy: counts.correct / n, classAccuracy: counts.classCorrect / n };
}
