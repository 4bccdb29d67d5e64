// Boxes: IoU of known boxes, greedy and class-aware NMS on constructed cases, flat-array unpacking,
// and the narrow op the task losses slice their heads with.
import { describe, expect, it } from 'vitest';
import { boxIou, classAwareNms, createRng, labeledBoxesFromFlat, narrow, noGrad, nonMaxSuppression, tensor, type Box, type Detection } from '../src/index.ts';

const box = (cx: number, cy: number, w: number, h: number): Box => ({ cx, cy, w, h });

describe('boxIou', () => {
  it.each([
    ['identical boxes', box(0.5, 0.5, 0.5, 0.5), box(0.5, 0.5, 0.5, 0.5), 1],
    ['a quarter-overlapping pair: 1/16 over 7/16', box(0.5, 0.5, 0.5, 0.5), box(0.75, 0.75, 0.5, 0.5), 1 / 7],
    ['a box inside another: area ratio', box(0.5, 0.5, 0.5, 0.5), box(0.5, 0.5, 0.25, 0.25), 0.25],
    ['half the height, same centre', box(0.5, 0.5, 0.5, 0.5), box(0.5, 0.5, 0.5, 0.25), 0.5],
    ['a horizontal shift by half the width: 1/3', box(0.3, 0.3, 0.2, 0.2), box(0.4, 0.3, 0.2, 0.2), 1 / 3],
    ['touching edges', box(0.25, 0.5, 0.5, 0.5), box(0.75, 0.5, 0.5, 0.5), 0],
    ['disjoint boxes', box(0.1, 0.1, 0.1, 0.1), box(0.9, 0.9, 0.1, 0.1), 0],
    ['two empty boxes', box(0.5, 0.5, 0, 0), box(0.5, 0.5, 0, 0), 0],
  ])('%s', (_title, a, b, expected) => {
    expect(boxIou(a, b)).toBeCloseTo(expected, 12);
    expect(boxIou(b, a)).toBeCloseTo(expected, 12);
  });
});

describe('nonMaxSuppression', () => {
  // A .9 and B .8 overlap heavily (IoU 0.82); C .7 is far away; D .6 overlaps A by 1/3; E .5 overlaps
  // B by 1/3 but A only by 0.25 and D by 0.16.
  const boxes = [box(0.3, 0.3, 0.2, 0.2), box(0.32, 0.3, 0.2, 0.2), box(0.7, 0.7, 0.2, 0.2), box(0.3, 0.4, 0.2, 0.2), box(0.42, 0.3, 0.2, 0.2)];
  const scores = [0.9, 0.8, 0.7, 0.6, 0.5];

  it.each([
    [0.5, [0, 2, 3, 4]],
    [0.3, [0, 2, 4]],
    [0.2, [0, 2]],
    [1, [0, 1, 2, 3, 4]],
  ])('at IoU threshold %s keeps %j (a suppressed box suppresses nothing)', (threshold, kept) => {
    expect(nonMaxSuppression(boxes, scores, threshold)).toEqual(kept);
  });

  it('visits boxes by score, not by index', () => {
    expect(nonMaxSuppression(boxes.slice(0, 2), [0.1, 0.95], 0.5)).toEqual([1]);
  });

  it('classAwareNms never suppresses across classes', () => {
    const dets: Detection[] = [
      { classId: 1, score: 0.9, box: boxes[0] },
      { classId: 2, score: 0.8, box: boxes[1] },
      { classId: 1, score: 0.85, box: boxes[1] },
      { classId: 2, score: 0.3, box: boxes[2] },
    ];
    expect(classAwareNms(dets, 0.5)).toEqual([dets[0], dets[1], dets[3]]);
  });

  it('rejects a threshold outside [0, 1] and mismatched scores', () => {
    expect(() => nonMaxSuppression(boxes, scores, 1.5)).toThrow(/nonMaxSuppression: iouThreshold must be in \[0, 1\], got 1.5/);
    expect(() => nonMaxSuppression(boxes, [1], 0.5)).toThrow(/nonMaxSuppression: 5 boxes but 1 scores/);
  });
});

describe('labeledBoxesFromFlat', () => {
  it('splits flat boxes by per-image offsets', () => {
    const out = labeledBoxesFromFlat([0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.2, 0.2, 0.9, 0.9, 0.1, 0.1], [7, 3, 1], [0, 2, 2, 3]);
    expect(out).toEqual([
      [
        { classId: 7, box: box(0.1, 0.2, 0.3, 0.4) },
        { classId: 3, box: box(0.5, 0.5, 0.2, 0.2) },
      ],
      [],
      [{ classId: 1, box: box(0.9, 0.9, 0.1, 0.1) }],
    ]);
  });

  it('rejects offsets that do not fit the arrays', () => {
    expect(() => labeledBoxesFromFlat([0, 0, 0, 0], [1], [0, 2])).toThrow(/offsets end at 2 objects, got 1 classes and 1 boxes/);
  });
});

describe('narrow', () => {
  const x = tensor(
    Array.from({ length: 24 }, (_, i) => i),
    [2, 3, 4],
  );

  it.each([
    [1, 1, 2, [2, 2, 4], [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23]],
    [2, 3, 1, [2, 3, 1], [3, 7, 11, 15, 19, 23]],
    [-1, 0, 2, [2, 3, 2], [0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21]],
    [0, 1, 1, [1, 3, 4], Array.from({ length: 12 }, (_, i) => 12 + i)],
  ])('dim %s start %s length %s of [2, 3, 4]', (dim, start, length, shape, values) => {
    const y = narrow(x, dim, start, length);
    expect(y.shape).toEqual(shape);
    expect(Array.from(y.data)).toEqual(values);
  });

  it('routes the gradient back to the slice only (central differences agree)', () => {
    const rng = createRng(2);
    const input = tensor(
      Array.from({ length: 60 }, () => rng.next() * 2 - 1),
      [3, 5, 4],
      { requiresGrad: true },
    );
    const r = Array.from({ length: 3 * 2 * 4 }, () => rng.next() * 2 - 1);
    const loss = (): number => noGrad(() => narrow(input, 1, 2, 2)).data.reduce((s, v, i) => s + v * r[i], 0);
    narrow(input, 1, 2, 2).backward(tensor(r, [3, 2, 4]));
    for (let i = 0; i < 60; i++) {
      const v = input.data[i];
      input.data[i] = v + 1e-2;
      const up = loss();
      input.data[i] = v - 1e-2;
      const down = loss();
      input.data[i] = v;
      expect(input.grad!.data[i]).toBeCloseTo((up - down) / 2e-2, 3);
    }
    // Channels 0, 1 and 4 are outside the slice.
    expect(input.grad!.data[0]).toBe(0);
    expect(input.grad!.data[4 * 4 + 1]).toBe(0);
  });

  it('names the range and the shape when out of bounds', () => {
    expect(() => narrow(x, 1, 2, 2)).toThrow(/narrow: \[2, 4\) is not a non-empty range within dim 1 of size 3 \(shape \[2, 3, 4\]\)/);
  });
});
