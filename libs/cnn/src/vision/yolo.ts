// YOLO (Redmon et al. 2016, "You Only Look Once"): target encoding, loss and decoding for a
// single-shot grid detector with one box per cell.
//
// The head outputs [N, 5 + C, S, S]: per cell (row i, column j) the channels are
//   0        t_o   objectness logit
//   1, 2     t_x, t_y   box centre offset within the cell: x = σ(t_x), y = σ(t_y) in (0, 1)
//   3, 4     t_w, t_h   box size: √w = σ(t_w), √h = σ(t_h), so w = σ(t_w)², h = σ(t_h)² in (0, 1)
//   5 ..     class logits
// The cell that contains an object's centre is responsible for it (image-relative centre
// cx = (j + x) / S, cy = (i + y) / S). Regressing √w and √h instead of w and h is the paper's way
// of making the same absolute error cost more in a small box than in a large one; the sigmoid keeps
// every decoded box inside the unit range without clamping.
//
// Loss per image, with 1obj the cells responsible for an object (λcoord = 5, λnoobj = 0.5 as in
// the paper):
//   Σ_cells [1obj + λnoobj·(1 − 1obj)] · BCEWithLogits(t_o, 1obj)
// + λcoord Σ_1obj [(σ(t_x) − x)² + (σ(t_y) − y)² + (σ(t_w) − √w)² + (σ(t_h) − √h)²]
// + Σ_1obj CrossEntropy(class logits, class)
// The paper uses squared error for objectness and class probabilities; binary and softmax
// cross-entropy here train faster and are what later YOLO versions use. Built entirely from
// autograd ops (narrow, sigmoid, the losses, mul, sum), so backward needs no code of its own.

import { assert, assertRange, fmt } from '../assert.ts';
import { add, mul, scale, sigmoid, sigmoidScalar } from '../ops/elementwise.ts';
import { binaryCrossEntropyWithLogits, crossEntropy, mse } from '../ops/loss.ts';
import { sum } from '../ops/reduce.ts';
import { fromData, type Tensor } from '../tensor.ts';
import { boxArea, classAwareNms, type Detection, type LabeledBox } from './box.ts';
import { narrow } from './narrow.ts';

/** Channels before the class logits: objectness and four box values. */
export const YOLO_BOX_CHANNELS = 5;

/** What `yoloLoss` compares the head output with; built by `encodeYoloTargets`. */
export interface YoloTargets {
  readonly count: number;
  readonly gridSize: number;
  readonly numClasses: number;
  /** [N, 1, S, S]: 1 in the cell responsible for an object, 0 elsewhere. */
  readonly objectness: Float32Array;
  /** [N, 4, S, S]: x and y offsets within the cell, √w, √h; 0 in cells without an object. */
  readonly box: Float32Array;
  /** [N, S, S]: the responsible object's class, 0 in cells without an object (masked out of the loss). */
  readonly classes: Int32Array;
}

/**
 * Encodes ground-truth objects (boxes normalised to the image, see box.ts) for an S×S grid. With
 * one box per cell, when several object centres fall in one cell the largest object is kept and
 * the others are not learned from in that image.
 */
export function encodeYoloTargets(objects: readonly (readonly LabeledBox[])[], gridSize: number, numClasses: number): YoloTargets {
  const op = 'encodeYoloTargets';
  assertRange(Number.isInteger(gridSize) && gridSize >= 1, () => `${op}: gridSize must be an integer >= 1, got ${gridSize}`);
  assertRange(Number.isInteger(numClasses) && numClasses >= 1, () => `${op}: numClasses must be an integer >= 1, got ${numClasses}`);
  const n = objects.length;
  const cells = gridSize * gridSize;
  const objectness = new Float32Array(n * cells);
  const box = new Float32Array(n * 4 * cells);
  const classes = new Int32Array(n * cells);
  const areaInCell = new Float64Array(cells);
  for (let b = 0; b < n; b++) {
    areaInCell.fill(-1);
    objects[b].forEach((o, k) => {
      const { cx, cy, w, h } = o.box;
      const where = `image ${b} object ${k}`;
      assertRange(Number.isInteger(o.classId) && o.classId >= 0 && o.classId < numClasses, () => `${op}: ${where} has class ${o.classId}, expected an integer in [0, ${numClasses})`);
      assertRange(cx >= 0 && cx <= 1 && cy >= 0 && cy <= 1 && w > 0 && w <= 1 && h > 0 && h <= 1, () => `${op}: ${where} box ${JSON.stringify(o.box)} is not a normalised box (centre in [0, 1], size in (0, 1])`);
      const col = Math.min(gridSize - 1, Math.floor(cx * gridSize));
      const row = Math.min(gridSize - 1, Math.floor(cy * gridSize));
      const cell = row * gridSize + col;
      const area = boxArea(o.box);
      if (area <= areaInCell[cell]) return;
      areaInCell[cell] = area;
      objectness[b * cells + cell] = 1;
      classes[b * cells + cell] = o.classId;
      const base = b * 4 * cells + cell;
      box[base] = cx * gridSize - col;
      box[base + cells] = cy * gridSize - row;
      box[base + 2 * cells] = Math.sqrt(w);
      box[base + 3 * cells] = Math.sqrt(h);
    });
  }
  return { count: n, gridSize, numClasses, objectness, box, classes };
}

export interface YoloLossOptions {
  /** Weight of the box error in responsible cells; default 5. */
  lambdaCoord?: number;
  /** Weight of the objectness loss in cells without an object; default 0.5. */
  lambdaNoObj?: number;
  /** 'sum' (default): summed over the images, what a shard returns; 'mean': divided by N. */
  reduction?: 'sum' | 'mean';
}

/** Checks a head output against [N, 5 + C, S, S] and returns (N, C, S). */
function headDims(op: string, output: Tensor, numClasses?: number): [number, number, number] {
  const [n, ch, s, s2] = output.shape;
  assert(
    output.shape.length === 4 && s === s2 && ch > YOLO_BOX_CHANNELS && (numClasses === undefined || ch === YOLO_BOX_CHANNELS + numClasses),
    () => `${op}: output must be [N, ${numClasses === undefined ? '5 + C' : YOLO_BOX_CHANNELS + numClasses}, S, S], got ${fmt(output.shape)}`,
  );
  return [n, ch - YOLO_BOX_CHANNELS, s];
}

/** The YOLO loss (see the top of this file) of a head output [N, 5 + C, S, S]: a scalar tensor. */
export function yoloLoss(output: Tensor, targets: YoloTargets, opts: YoloLossOptions = {}): Tensor {
  const op = 'yoloLoss';
  const [n, c, s] = headDims(op, output, targets.numClasses);
  assert(n === targets.count && s === targets.gridSize, () => `${op}: output ${fmt(output.shape)} does not match targets for ${targets.count} images on a ${targets.gridSize}x${targets.gridSize} grid`);
  const lambdaCoord = opts.lambdaCoord ?? 5;
  const lambdaNoObj = opts.lambdaNoObj ?? 0.5;
  const reduction = opts.reduction ?? 'sum';
  assertRange(lambdaCoord >= 0 && lambdaNoObj >= 0, () => `${op}: lambdaCoord and lambdaNoObj must be >= 0, got ${lambdaCoord} and ${lambdaNoObj}`);
  assertRange(reduction === 'sum' || reduction === 'mean', () => `${op}: reduction must be 'sum' or 'mean', got ${String(reduction)}`);

  const obj = targets.objectness;
  const objWeight = new Float32Array(obj.length);
  const coordWeight = new Float32Array(obj.length);
  for (let i = 0; i < obj.length; i++) {
    objWeight[i] = obj[i] > 0 ? 1 : lambdaNoObj;
    coordWeight[i] = obj[i] > 0 ? lambdaCoord : 0;
  }
  const cellShape = [n, 1, s, s];
  const objectness = sum(mul(binaryCrossEntropyWithLogits(narrow(output, 1, 0, 1), fromData(obj, cellShape), { reduction: 'none' }), fromData(objWeight, cellShape)));
  const boxError = mse(sigmoid(narrow(output, 1, 1, 4)), fromData(targets.box, [n, 4, s, s]), { reduction: 'none' });
  const box = sum(mul(boxError, fromData(coordWeight, cellShape))); // [N, 1, S, S] broadcasts over the 4 box channels
  const classLoss = crossEntropy(narrow(output, 1, YOLO_BOX_CHANNELS, c), targets.classes, { reduction: 'none' });
  const classification = sum(mul(classLoss, fromData(obj, [n, s, s])));
  const total = add(add(objectness, box), classification);
  return reduction === 'mean' ? scale(total, 1 / n) : total;
}

export interface YoloDecodeOptions {
  /** Keep cells whose score σ(t_o) · max softmax class probability is at least this; default 0.05. Use a low value for mAP. */
  scoreThreshold?: number;
  /** Class-aware non-maximum suppression threshold; default 0.5. */
  iouThreshold?: number;
  /** At most this many detections per image, highest scores first; default 100. */
  maxDetections?: number;
}

/** Decodes a head output [N, 5 + C, S, S] into each image's detections, highest score first. */
export function decodeYolo(output: Tensor, opts: YoloDecodeOptions = {}): Detection[][] {
  const op = 'decodeYolo';
  const [n, c, s] = headDims(op, output);
  const scoreThreshold = opts.scoreThreshold ?? 0.05;
  const iouThreshold = opts.iouThreshold ?? 0.5;
  const maxDetections = opts.maxDetections ?? 100;
  assertRange(scoreThreshold >= 0 && scoreThreshold <= 1, () => `${op}: scoreThreshold must be in [0, 1], got ${scoreThreshold}`);
  assertRange(Number.isInteger(maxDetections) && maxDetections >= 1, () => `${op}: maxDetections must be an integer >= 1, got ${maxDetections}`);
  const cells = s * s;
  const ch = YOLO_BOX_CHANNELS + c;
  const d = output.data;
  const out: Detection[][] = [];
  for (let b = 0; b < n; b++) {
    const candidates: Detection[] = [];
    const base = b * ch * cells;
    for (let cell = 0; cell < cells; cell++) {
      const p = base + cell; // channel k of this cell is d[p + k·cells]
      const logits = p + YOLO_BOX_CHANNELS * cells;
      // Softmax over the class logits: the best class and its probability.
      let best = 0;
      let max = -Infinity;
      for (let k = 0, e = logits; k < c; k++, e += cells) {
        if (d[e] > max) {
          max = d[e];
          best = k;
        }
      }
      let z = 0;
      for (let k = 0, e = logits; k < c; k++, e += cells) z += Math.exp(d[e] - max);
      const score = sigmoidScalar(d[p]) / z;
      if (score < scoreThreshold) continue;
      const row = Math.floor(cell / s);
      const col = cell - row * s;
      const sw = sigmoidScalar(d[p + 3 * cells]);
      const sh = sigmoidScalar(d[p + 4 * cells]);
      candidates.push({ classId: best, score, box: { cx: (col + sigmoidScalar(d[p + cells])) / s, cy: (row + sigmoidScalar(d[p + 2 * cells])) / s, w: sw * sw, h: sh * sh } });
    }
    out.push(classAwareNms(candidates, iouThreshold).slice(0, maxDetections));
  }
  return out;
}
