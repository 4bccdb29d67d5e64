// Mean average precision of a detector, PASCAL VOC style (VOC 2010+ all-point interpolation).
//
// Per class: rank every detection of that class over all images by score. Walking down the
// ranking, a detection is a true positive when its best-overlapping ground-truth box of the same
// class in the same image has IoU ≥ the threshold (0.5 for mAP@0.5) and was not matched by a
// higher-ranked detection; otherwise it is a false positive (a duplicate counts as one). This gives
// precision p(r) at every recall r; AP is the area under the precision envelope
// p̂(r) = max_{r' ≥ r} p(r'), summed exactly at the recall steps. mAP averages AP over the classes
// that have ground truth (a class with none has no defined AP and is left out, as in VOC).

import { assertRange } from '../assert.ts';
import { boxIou, type Detection, type LabeledBox } from './box.ts';

export interface MapOptions {
  /** Number of classes; class ids are in [0, numClasses). */
  numClasses: number;
  /** IoU needed for a match; default 0.5. */
  iouThreshold?: number;
}

export interface ClassAp {
  classId: number;
  /** Average precision, or null when the class has no ground truth. */
  ap: number | null;
  groundTruths: number;
  detections: number;
  truePositives: number;
}

export interface MapResult {
  /** Mean of the defined per-class APs; 0 when no class has ground truth. */
  map: number;
  perClass: ClassAp[];
}

/**
 * Area under the precision envelope of a ranked list: `hits[k]` tells whether the k-th ranked
 * detection is a true positive; `positives` is the number of ground-truth objects.
 */
export function averagePrecision(hits: ArrayLike<boolean>, positives: number): number {
  if (positives <= 0) return 0;
  const n = hits.length;
  const precision = new Float64Array(n);
  const recall = new Float64Array(n);
  let tp = 0;
  for (let k = 0; k < n; k++) {
    if (hits[k]) tp++;
    precision[k] = tp / (k + 1);
    recall[k] = tp / positives;
  }
  // Envelope from the right, then the area of the step function at each rise in recall.
  for (let k = n - 2; k >= 0; k--) precision[k] = Math.max(precision[k], precision[k + 1]);
  let ap = 0;
  let previousRecall = 0;
  for (let k = 0; k < n; k++) {
    if (recall[k] > previousRecall) {
      ap += (recall[k] - previousRecall) * precision[k];
      previousRecall = recall[k];
    }
  }
  return ap;
}

/** VOC-style mAP of per-image detections against per-image ground truth (same image order). */
export function meanAveragePrecision(detections: readonly (readonly Detection[])[], groundTruths: readonly (readonly LabeledBox[])[], opts: MapOptions): MapResult {
  const op = 'meanAveragePrecision';
  const { numClasses } = opts;
  const iouThreshold = opts.iouThreshold ?? 0.5;
  assertRange(Number.isInteger(numClasses) && numClasses >= 1, () => `${op}: numClasses must be an integer >= 1, got ${numClasses}`);
  assertRange(iouThreshold > 0 && iouThreshold <= 1, () => `${op}: iouThreshold must be in (0, 1], got ${iouThreshold}`);
  assertRange(detections.length === groundTruths.length, () => `${op}: detections for ${detections.length} images, ground truth for ${groundTruths.length}`);
  const checkClass = (classId: number, where: string): void => {
    assertRange(Number.isInteger(classId) && classId >= 0 && classId < numClasses, () => `${op}: ${where} has class ${classId}, expected an integer in [0, ${numClasses})`);
  };

  const gtCount = new Array<number>(numClasses).fill(0);
  groundTruths.forEach((objs, i) =>
    objs.forEach((g, j) => {
      checkClass(g.classId, `ground truth ${j} of image ${i}`);
      gtCount[g.classId]++;
    }),
  );
  // Every detection as (image, detection), grouped by class.
  const byClass: { image: number; det: Detection }[][] = Array.from({ length: numClasses }, () => []);
  detections.forEach((dets, i) =>
    dets.forEach((d, j) => {
      checkClass(d.classId, `detection ${j} of image ${i}`);
      byClass[d.classId].push({ image: i, det: d });
    }),
  );

  const perClass: ClassAp[] = [];
  for (let c = 0; c < numClasses; c++) {
    // Stable sort: equal scores keep image order, so the result does not depend on the engine.
    const ranked = byClass[c].map((e, k) => ({ ...e, k })).sort((a, b) => b.det.score - a.det.score || a.k - b.k);
    const matched = groundTruths.map((objs) => new Uint8Array(objs.length));
    const hits = ranked.map(({ image, det }) => {
      let best = -1;
      let bestIou = -Infinity;
      groundTruths[image].forEach((g, j) => {
        if (g.classId !== c) return;
        const iou = boxIou(det.box, g.box);
        if (iou > bestIou) {
          bestIou = iou;
          best = j;
        }
      });
      if (best < 0 || bestIou < iouThreshold || matched[image][best]) return false;
      matched[image][best] = 1;
      return true;
    });
    const truePositives = hits.filter(Boolean).length;
    perClass.push({ classId: c, ap: gtCount[c] > 0 ? averagePrecision(hits, gtCount[c]) : null, groundTruths: gtCount[c], detections: ranked.length, truePositives });
  }
  const defined = perClass.filter((p) => p.ap !== null);
  const map = defined.length === 0 ? 0 : defined.reduce((s, p) => s + p.ap!, 0) / defined.length;
  return { map, perClass };
}
