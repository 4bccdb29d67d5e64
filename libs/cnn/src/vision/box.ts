// Axis-aligned boxes, intersection over union and non-maximum suppression.
//
// Convention for every box in Stride: centre and size normalised by the image side,
// `{ cx, cy, w, h }` in [0, 1], so boxes do not depend on the canvas size. Pixel (x, y) of a W×H
// image covers [x/W, (x+1)/W) × [y/H, (y+1)/H).

import { assertRange } from '../assert.ts';

export interface Box {
  /** Centre, as a fraction of the image width / height. */
  readonly cx: number;
  readonly cy: number;
  /** Width and height, as fractions of the image width / height. */
  readonly w: number;
  readonly h: number;
}

/** A ground-truth object: its class and box. */
export interface LabeledBox {
  readonly classId: number;
  readonly box: Box;
}

/** A detected object. */
export interface Detection extends LabeledBox {
  /** Confidence in [0, 1]; detections are ranked by it. */
  readonly score: number;
}

/** Area of a box (0 for a degenerate one). */
export function boxArea(b: Box): number {
  return Math.max(0, b.w) * Math.max(0, b.h);
}

/** Intersection over union of two boxes: |a ∩ b| / |a ∪ b|, 0 when the union is empty. */
export function boxIou(a: Box, b: Box): number {
  const iw = Math.min(a.cx + a.w / 2, b.cx + b.w / 2) - Math.max(a.cx - a.w / 2, b.cx - b.w / 2);
  const ih = Math.min(a.cy + a.h / 2, b.cy + b.h / 2) - Math.max(a.cy - a.h / 2, b.cy - b.h / 2);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = boxArea(a) + boxArea(b) - inter;
  return union > 0 ? inter / union : 0;
}

/** Box `i` of a flat `[cx, cy, w, h, cx, cy, w, h, ...]` array. */
export function boxAt(flat: ArrayLike<number>, i: number): Box {
  const o = 4 * i;
  return { cx: flat[o], cy: flat[o + 1], w: flat[o + 2], h: flat[o + 3] };
}

/**
 * Per-image objects from flat arrays, as the generated datasets store them: the objects of image i
 * are `offsets[i] .. offsets[i+1] - 1`, object j has box `boxes[4j .. 4j+3]` and class `classes[j]`.
 */
export function labeledBoxesFromFlat(boxes: ArrayLike<number>, classes: ArrayLike<number>, offsets: ArrayLike<number>): LabeledBox[][] {
  const objects = offsets.length - 1;
  assertRange(objects >= 0 && offsets[0] === 0, () => `labeledBoxesFromFlat: offsets must start at 0 and hold one entry per image plus one, got ${offsets.length} entries starting at ${offsets[0]}`);
  const total = offsets[objects];
  assertRange(classes.length === total && boxes.length === 4 * total, () => `labeledBoxesFromFlat: offsets end at ${total} objects, got ${classes.length} classes and ${boxes.length / 4} boxes`);
  const out: LabeledBox[][] = [];
  for (let i = 0; i < objects; i++) {
    assertRange(offsets[i + 1] >= offsets[i], () => `labeledBoxesFromFlat: offsets decrease at image ${i} (${offsets[i]} then ${offsets[i + 1]})`);
    const image: LabeledBox[] = [];
    for (let j = offsets[i]; j < offsets[i + 1]; j++) image.push({ classId: classes[j], box: boxAt(boxes, j) });
    out.push(image);
  }
  return out;
}

/** Indices of `scores` from highest to lowest; ties keep index order, so results are deterministic. */
export function rankByScore(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
}

function checkThreshold(op: string, iouThreshold: number): void {
  assertRange(iouThreshold >= 0 && iouThreshold <= 1, () => `${op}: iouThreshold must be in [0, 1], got ${iouThreshold}`);
}

/**
 * Greedy non-maximum suppression: visit the boxes from the highest score down and keep a box
 * unless its IoU with a box already kept is above `iouThreshold` (torchvision `nms` semantics).
 * Returns the kept indices, highest score first.
 */
export function nonMaxSuppression(boxes: readonly Box[], scores: ArrayLike<number>, iouThreshold: number): number[] {
  checkThreshold('nonMaxSuppression', iouThreshold);
  assertRange(boxes.length === scores.length, () => `nonMaxSuppression: ${boxes.length} boxes but ${scores.length} scores`);
  const kept: number[] = [];
  for (const i of rankByScore(scores)) {
    if (kept.every((k) => boxIou(boxes[i], boxes[k]) <= iouThreshold)) kept.push(i);
  }
  return kept;
}

/**
 * Non-maximum suppression run separately within each class (boxes of different classes never
 * suppress each other). Returns the kept detections, highest score first.
 */
export function classAwareNms(detections: readonly Detection[], iouThreshold: number): Detection[] {
  checkThreshold('classAwareNms', iouThreshold);
  const kept: Detection[] = [];
  for (const i of rankByScore(detections.map((d) => d.score))) {
    const d = detections[i];
    if (kept.every((k) => k.classId !== d.classId || boxIou(d.box, k.box) <= iouThreshold)) kept.push(d);
  }
  return kept;
}
