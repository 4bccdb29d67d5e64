// mAP@0.5 on constructed cases with hand-computed values; localization loss and metrics;
// segmentation loss, confusion matrix, pixel accuracy and mean IoU.
import { describe, expect, it } from 'vitest';
import {
  averagePrecision,
  decodeLocalization,
  localizationCounts,
  localizationLoss,
  localizationMetrics,
  meanAveragePrecision,
  segmentationConfusion,
  segmentationLoss,
  segmentationMetrics,
  tensor,
  zeros,
  type Box,
  type Detection,
  type LabeledBox,
} from '../src/index.ts';

const box = (cx: number, cy: number, w: number, h: number): Box => ({ cx, cy, w, h });
const logit = (p: number): number => Math.log(p / (1 - p));

describe('averagePrecision (VOC all-point interpolation)', () => {
  it.each([
    ['all hits', [true, true], 2, 1],
    ['hits T F T F T of 3 objects: (1 + 2/3 + 3/5) / 3', [true, false, true, false, true], 3, 34 / 45],
    ['a miss first, then every object: precision 1/2 at full recall', [false, true], 1, 0.5],
    ['half the objects never found', [true], 2, 0.5],
    ['the envelope lifts an early dip: F T T of 2 objects → 2/3', [false, true, true], 2, 2 / 3],
    ['no detections', [], 3, 0],
  ])('%s', (_title, hits, positives, expected) => {
    expect(averagePrecision(hits, positives)).toBeCloseTo(expected, 12);
  });
});

describe('meanAveragePrecision', () => {
  // Class 0: A, B in image 0, C in image 1. Ranked detections: A (TP), a miss in image 1 (FP), B (TP),
  // A again (duplicate, FP), C (TP) → AP 34/45.
  // Class 1: D in image 1; a detection at IoU 1/3 (FP, ranked first), then D exactly (TP) → AP 1/2.
  // Class 2: no ground truth, one detection → no AP, left out of the mean.
  const A = box(0.2, 0.2, 0.2, 0.2);
  const B = box(0.7, 0.3, 0.2, 0.2);
  const C = box(0.5, 0.5, 0.3, 0.3);
  const D = box(0.3, 0.3, 0.2, 0.2);
  const gts: LabeledBox[][] = [
    [
      { classId: 0, box: A },
      { classId: 0, box: B },
    ],
    [
      { classId: 0, box: C },
      { classId: 1, box: D },
    ],
  ];
  const dets: Detection[][] = [
    [
      { classId: 0, score: 0.9, box: A },
      { classId: 0, score: 0.7, box: box(0.71, 0.3, 0.2, 0.2) },
      { classId: 0, score: 0.6, box: box(0.21, 0.2, 0.2, 0.2) },
      { classId: 2, score: 0.99, box: A },
    ],
    [
      { classId: 0, score: 0.8, box: box(0.9, 0.9, 0.1, 0.1) },
      { classId: 0, score: 0.5, box: C },
      { classId: 1, score: 0.95, box: box(0.4, 0.3, 0.2, 0.2) },
      { classId: 1, score: 0.3, box: D },
    ],
  ];

  it('matches per class by IoU ≥ 0.5, counts duplicates as false positives and averages the classes with ground truth', () => {
    const r = meanAveragePrecision(dets, gts, { numClasses: 3 });
    expect(r.perClass.map((c) => c.ap)).toEqual([expect.closeTo(34 / 45, 12), expect.closeTo(0.5, 12), null]);
    expect(r.perClass.map((c) => [c.groundTruths, c.detections, c.truePositives])).toEqual([
      [3, 5, 3],
      [1, 2, 1],
      [0, 1, 0],
    ]);
    expect(r.map).toBeCloseTo((34 / 45 + 0.5) / 2, 12);
  });

  it('an IoU of exactly the threshold is a match', () => {
    const r = meanAveragePrecision([[{ classId: 0, score: 1, box: box(0.5, 0.5, 0.5, 0.25) }]], [[{ classId: 0, box: box(0.5, 0.5, 0.5, 0.5) }]], { numClasses: 1 });
    expect(r.map).toBe(1);
    expect(meanAveragePrecision([[{ classId: 0, score: 1, box: box(0.5, 0.5, 0.5, 0.25) }]], [[{ classId: 0, box: box(0.5, 0.5, 0.5, 0.5) }]], { numClasses: 1, iouThreshold: 0.75 }).map).toBe(0);
  });

  it('is 1 for perfect detections and 0 with no ground truth at all', () => {
    const perfect = gts.map((objs) => objs.map((o) => ({ ...o, score: 0.5 })));
    expect(meanAveragePrecision(perfect, gts, { numClasses: 3 }).map).toBe(1);
    expect(meanAveragePrecision([[]], [[]], { numClasses: 2 }).map).toBe(0);
  });

  it('names a bad class and mismatched image counts', () => {
    expect(() => meanAveragePrecision(dets, gts, { numClasses: 2 })).toThrow(/meanAveragePrecision: detection 3 of image 0 has class 2, expected an integer in \[0, 2\)/);
    expect(() => meanAveragePrecision(dets, [gts[0]], { numClasses: 3 })).toThrow(/detections for 2 images, ground truth for 1/);
  });
});

describe('localization', () => {
  it('loss = CE(class) + 5·Σ(σ(t) − box)² on a hand-computed case', () => {
    // Class logits [0, ln 3] → p(1) = 3/4; box logits 0 → σ = 0.5 against (0.5, 0.25, 0.5, 1).
    const out = tensor([0, Math.log(3), 0, 0, 0, 0], [1, 6], { requiresGrad: true });
    const loss = localizationLoss(out, [1], [0.5, 0.25, 0.5, 1]);
    expect(loss.item()).toBeCloseTo(-Math.log(0.75) + 5 * (0.0625 + 0.25), 5);
    loss.backward();
    // d/dt_cy = 5 · 2(0.5 − 0.25) · σ'(0) = 0.625
    expect(out.grad!.data[3]).toBeCloseTo(0.625, 6);
    expect(localizationLoss(out, [1], [0.5, 0.25, 0.5, 1], { lambdaBox: 0 }).item()).toBeCloseTo(-Math.log(0.75), 6);
  });

  it("'mean' divides the summed loss by the images", () => {
    const out = zeros([2, 5]);
    const sum = localizationLoss(out, [0, 0], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]).item();
    expect(sum).toBeCloseTo(0, 6);
    const labels = [0, 0];
    const boxes = [0.5, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5, 0.5];
    expect(localizationLoss(out, labels, boxes, { reduction: 'mean' }).item()).toBeCloseTo(localizationLoss(out, labels, boxes).item() / 2, 6);
  });

  it('metrics: mean IoU, class accuracy and localization accuracy (class right and IoU ≥ 0.5)', () => {
    // Three images, 2 classes. 0: right class, exact box. 1: right class, box at IoU 1/7. 2: wrong class, exact box.
    const truth = [box(0.5, 0.5, 0.5, 0.5), box(0.5, 0.5, 0.5, 0.5), box(0.3, 0.4, 0.2, 0.6)];
    const predicted = [truth[0], box(0.75, 0.75, 0.5, 0.5), truth[2]];
    const rows = predicted.map((b, i) => [...(i === 2 ? [0, 2] : [2, 0]), logit(b.cx), logit(b.cy), logit(b.w), logit(b.h)]);
    const out = tensor(rows.flat(), [3, 6]);
    const flat = truth.flatMap((b) => [b.cx, b.cy, b.w, b.h]);
    const decoded = decodeLocalization(out);
    expect(decoded.map((d) => d.classId)).toEqual([0, 0, 1]);
    expect(decoded[0].score).toBeCloseTo(Math.exp(2) / (1 + Math.exp(2)), 6);
    expect(decoded[1].box.cx).toBeCloseTo(0.75, 6);
    const counts = localizationCounts(out, [0, 0, 0], flat);
    expect(counts.count).toBe(3);
    expect(counts.iouSum).toBeCloseTo(1 + 1 / 7 + 1, 5);
    expect([counts.classCorrect, counts.correct]).toEqual([2, 1]);
    const m = localizationMetrics(counts);
    expect(m.meanIou).toBeCloseTo((2 + 1 / 7) / 3, 5);
    expect(m.accuracy).toBeCloseTo(1 / 3, 12);
    expect(m.classAccuracy).toBeCloseTo(2 / 3, 12);
    // Relabel image 2 to the predicted class: its exact box now counts too.
    expect(localizationCounts(out, [0, 0, 1], flat).correct).toBe(2);
    expect(localizationMetrics({ count: 0, iouSum: 0, classCorrect: 0, correct: 0 })).toEqual({ meanIou: 0, accuracy: 0, classAccuracy: 0 });
  });

  it('checks the head shape and the targets', () => {
    expect(() => localizationLoss(zeros([2, 4]), [0, 0], new Array(8).fill(0.5))).toThrow(/localizationLoss: output must be \[N, C \+ 4\] with C >= 1, got \[2, 4\]/);
    expect(() => localizationLoss(zeros([2, 6]), [0], new Array(8).fill(0.5))).toThrow(/localizationLoss: 2 outputs need 2 labels and 8 box values, got 1 and 8/);
  });
});

describe('segmentation', () => {
  // Logits [1, K, 1, 4] whose arg-max per pixel is [0, 1, 1, 2]; truth [0, 1, 2, 2].
  function logits(k: number): ReturnType<typeof tensor> {
    const pred = [0, 1, 1, 2];
    const data = new Array<number>(k * 4).fill(0);
    pred.forEach((c, p) => (data[c * 4 + p] = 5));
    return tensor(data, [1, k, 1, 4]);
  }
  const truth = [0, 1, 2, 2];

  it('confusion matrix, pixel accuracy 3/4, IoUs 1, 1/2, 1/2 → mean 2/3', () => {
    const conf = segmentationConfusion(logits(3), truth);
    expect(Array.from(conf)).toEqual([1, 0, 0, 0, 1, 0, 0, 1, 1]);
    const m = segmentationMetrics(conf, 3);
    expect(m.pixelAccuracy).toBe(0.75);
    expect(m.classIou).toEqual([1, 0.5, 0.5]);
    expect(m.meanIou).toBeCloseTo(2 / 3, 12);
  });

  it('a class absent from truth and prediction has no IoU and stays out of the mean; one only predicted scores 0', () => {
    expect(segmentationMetrics(segmentationConfusion(logits(4), truth), 4)).toEqual({ pixelAccuracy: 0.75, meanIou: expect.closeTo(2 / 3, 12), classIou: [1, 0.5, 0.5, null] });
    // Truth has no class 2: predicted-only class 2 scores 0.
    const m = segmentationMetrics(segmentationConfusion(logits(3), [0, 1, 1, 1]), 3);
    expect(m.classIou).toEqual([1, 2 / 3, 0]);
    expect(m.meanIou).toBeCloseTo(5 / 9, 12);
  });

  it('accumulates over batches into the same matrix', () => {
    const conf = segmentationConfusion(logits(3), truth);
    segmentationConfusion(logits(3), truth, conf);
    expect(segmentationMetrics(conf, 3).pixelAccuracy).toBe(0.75);
    expect(conf[2 * 3 + 1]).toBe(2);
  });

  it('loss: per-image mean pixel cross-entropy, summed over images (or averaged)', () => {
    const out = zeros([2, 4, 2, 3], { requiresGrad: true });
    const masks = [0, 1, 2, 3, 0, 1, 2, 2, 2, 1, 1, 0];
    expect(segmentationLoss(out, masks).item()).toBeCloseTo(2 * Math.log(4), 5);
    expect(segmentationLoss(out, masks, { reduction: 'mean' }).item()).toBeCloseTo(Math.log(4), 5);
    segmentationLoss(out, masks).backward();
    // Pixel 0 of image 0 (class 0): (softmax − onehot) / 6 pixels.
    expect(out.grad!.data[0]).toBeCloseTo((0.25 - 1) / 6, 6);
  });

  it('names bad masks', () => {
    expect(() => segmentationLoss(zeros([1, 3, 2, 2]), [0, 1, 2])).toThrow(/segmentationLoss: masks hold 3 labels, logits \[1, 3, 2, 2\] need 4 \(\[1, 2, 2\]\)/);
    expect(() => segmentationConfusion(zeros([1, 3, 1, 2]), [0, 3])).toThrow(/segmentationConfusion: mask value 3 at image 0 pixel 1 is not a class in \[0, 3\)/);
  });
});
