// YOLO: target encoding, the loss on hand-computed cases, decoding + NMS, and a decode ∘ encode
// round trip. (The gradient of the head + loss is checked in zoo-blocks.test.ts.)
import { describe, expect, it } from 'vitest';
import { decodeYolo, encodeYoloTargets, tensor, yoloLoss, type LabeledBox } from '../src/index.ts';

const LN2 = Math.log(2);
const logit = (p: number): number => Math.log(p / (1 - p));

/** A zero head output [N, 5 + C, S, S] with `set(n, channel, row, col, value)`. */
function head(n: number, c: number, s: number) {
  const ch = 5 + c;
  const data = new Float32Array(n * ch * s * s);
  return {
    data,
    set(b: number, k: number, row: number, col: number, v: number): void {
      data[((b * ch + k) * s + row) * s + col] = v;
    },
    tensor: () => tensor(data, [n, ch, s, s], { requiresGrad: true }),
  };
}

describe('encodeYoloTargets', () => {
  it('puts each object in the cell holding its centre: offsets in the cell, √w, √h, class', () => {
    const t = encodeYoloTargets([[{ classId: 2, box: { cx: 0.8, cy: 0.3, w: 0.16, h: 0.25 } }]], 2, 3);
    // Centre (0.8, 0.3) on a 2x2 grid: column 1, row 0, offsets (0.6, 0.6).
    expect(Array.from(t.objectness)).toEqual([0, 1, 0, 0]);
    expect(Array.from(t.classes)).toEqual([0, 2, 0, 0]);
    const at = (k: number): number => t.box[k * 4 + 1];
    expect([at(0), at(1), at(2), at(3)].map((v) => +v.toFixed(6))).toEqual([0.6, 0.6, 0.4, 0.5]);
  });

  it('keeps the largest object when two centres share a cell, and clamps a centre at 1 into the last cell', () => {
    const objects: LabeledBox[] = [
      { classId: 0, box: { cx: 0.1, cy: 0.1, w: 0.1, h: 0.1 } },
      { classId: 1, box: { cx: 0.2, cy: 0.2, w: 0.3, h: 0.3 } },
      { classId: 2, box: { cx: 0.15, cy: 0.15, w: 0.2, h: 0.2 } },
      { classId: 0, box: { cx: 1, cy: 1, w: 0.2, h: 0.2 } },
    ];
    const t = encodeYoloTargets([objects], 2, 3);
    expect(Array.from(t.objectness)).toEqual([1, 0, 0, 1]);
    expect(Array.from(t.classes)).toEqual([1, 0, 0, 0]);
    expect(t.box[3]).toBeCloseTo(1, 6); // x offset of the clamped centre: 1·2 − 1
  });

  it('names the image and object of a bad box or class', () => {
    expect(() => encodeYoloTargets([[], [{ classId: 3, box: { cx: 0.5, cy: 0.5, w: 0.1, h: 0.1 } }]], 2, 3)).toThrow(/encodeYoloTargets: image 1 object 0 has class 3, expected an integer in \[0, 3\)/);
    expect(() => encodeYoloTargets([[{ classId: 0, box: { cx: 0.5, cy: 0.5, w: 0, h: 0.1 } }]], 2, 3)).toThrow(/image 0 object 0 box .* is not a normalised box/);
  });
});

describe('yoloLoss', () => {
  // One object, class 1 of 2, centre (0.25, 0.75) → cell row 1, col 0 of a 2x2 grid, offsets (0.5, 0.5),
  // w = 0.25, h = 0.36 → √w = 0.5, √h = 0.6.
  const targets = encodeYoloTargets([[{ classId: 1, box: { cx: 0.25, cy: 0.75, w: 0.25, h: 0.36 } }]], 2, 2);

  it('on an all-zero output: ln2 (object) + 3·0.5·ln2 (no object) + 5·(0.6 − 0.5)² (box) + ln2 (class)', () => {
    const loss = yoloLoss(head(1, 2, 2).tensor(), targets);
    expect(loss.item()).toBeCloseTo(3.5 * LN2 + 5 * 0.01, 5);
  });

  it('reads each part from its own channel: objectness, box and class logits set at the object cell', () => {
    const h = head(1, 2, 2);
    h.set(0, 0, 1, 0, logit(0.8)); // objectness → BCE = −ln 0.8
    h.set(0, 4, 1, 0, logit(0.6)); // σ(t_h) = 0.6 = √h → no box error left
    h.set(0, 6, 1, 0, Math.log(3)); // class logits [0, ln 3] → p(1) = 3/4
    h.set(0, 0, 0, 1, logit(0.25)); // an empty cell's objectness → 0.5·(−ln 0.75)
    const expected = -Math.log(0.8) + 0.5 * (2 * LN2 - Math.log(0.75)) - Math.log(0.75);
    expect(yoloLoss(h.tensor(), targets).item()).toBeCloseTo(expected, 5);
  });

  it('weights follow lambdaCoord and lambdaNoObj; mean divides by the images', () => {
    const out = head(2, 2, 2).tensor();
    const two = encodeYoloTargets([[{ classId: 1, box: { cx: 0.25, cy: 0.75, w: 0.25, h: 0.36 } }], []], 2, 2);
    // Image 2 has no object: 4 empty cells.
    const sum = (2 * LN2 + 3 * 0.5 * LN2 + 5 * 0.01) + 4 * 0.5 * LN2;
    expect(yoloLoss(out, two).item()).toBeCloseTo(sum, 5);
    expect(yoloLoss(out, two, { reduction: 'mean' }).item()).toBeCloseTo(sum / 2, 5);
    expect(yoloLoss(out, two, { lambdaCoord: 0, lambdaNoObj: 1 }).item()).toBeCloseTo(2 * LN2 + 3 * LN2 + 4 * LN2, 5);
  });

  it('sends gradient only where the loss looks: no box or class gradient in empty cells', () => {
    const out = head(1, 2, 2).tensor();
    yoloLoss(out, targets).backward();
    const g = out.grad!.data;
    const at = (k: number, row: number, col: number): number => g[(k * 2 + row) * 2 + col];
    expect(at(0, 0, 0)).toBeCloseTo(0.5 * 0.5, 6); // λnoobj · (σ(0) − 0)
    expect(at(0, 1, 0)).toBeCloseTo(0.5 - 1, 6); // σ(0) − 1
    for (let k = 1; k < 7; k++) expect(at(k, 0, 0)).toBe(0);
    // Box h: λcoord · 2(σ − 0.6) · σ(1 − σ) = 5 · 2 · (−0.1) · 0.25
    expect(at(4, 1, 0)).toBeCloseTo(-0.25, 6);
    expect(at(5, 1, 0)).toBeCloseTo(0.5, 6); // class 0 logit: softmax − 0
    expect(at(6, 1, 0)).toBeCloseTo(-0.5, 6);
  });

  it('checks the output against the targets', () => {
    expect(() => yoloLoss(head(1, 3, 2).tensor(), targets)).toThrow(/yoloLoss: output must be \[N, 7, S, S\], got \[1, 8, 2, 2\]/);
    expect(() => yoloLoss(head(1, 2, 3).tensor(), targets)).toThrow(/does not match targets for 1 images on a 2x2 grid/);
  });
});

describe('decodeYolo', () => {
  it('decodes cell offsets and √w, √h back to image boxes, scores σ(obj)·p(class), and suppresses duplicates per class', () => {
    const h = head(1, 2, 2);
    const fill = (row: number, col: number, obj: number, x: number, y: number, sw: number, sh: number, cls: number): void => {
      h.set(0, 0, row, col, logit(obj));
      h.set(0, 1, row, col, logit(x));
      h.set(0, 2, row, col, logit(y));
      h.set(0, 3, row, col, logit(sw));
      h.set(0, 4, row, col, logit(sh));
      h.set(0, 5 + cls, row, col, 10); // p(cls) ≈ 1
    };
    fill(0, 0, 0.9, 0.9, 0.5, 0.5, 0.5, 1); // box (0.45, 0.25, 0.25, 0.25)
    fill(0, 1, 0.8, 0.02, 0.5, 0.5, 0.5, 1); // box (0.51, 0.25, 0.25, 0.25): IoU 0.19 / 0.31 = 0.61 with the first, same class → suppressed
    fill(1, 1, 0.7, 0.5, 0.5, 0.4, 0.6, 0); // box (0.75, 0.75, 0.16, 0.36)
    fill(1, 0, 0.01, 0.5, 0.5, 0.5, 0.5, 0); // score 0.01 < 0.05 → dropped
    const [dets] = decodeYolo(h.tensor());
    expect(dets.map((d) => d.classId)).toEqual([1, 0]);
    expect(dets[0].score).toBeCloseTo(0.9, 3);
    expect(dets[0].box.cx).toBeCloseTo(0.45, 5);
    expect(dets[0].box.cy).toBeCloseTo(0.25, 5);
    expect(dets[0].box.w).toBeCloseTo(0.25, 5);
    expect(dets[1].box).toEqual({ cx: expect.closeTo(0.75, 5), cy: expect.closeTo(0.75, 5), w: expect.closeTo(0.16, 5), h: expect.closeTo(0.36, 5) });
    expect(decodeYolo(h.tensor(), { iouThreshold: 0.7 })[0]).toHaveLength(3);
    expect(decodeYolo(h.tensor(), { scoreThreshold: 0.75 })[0].map((d) => d.classId)).toEqual([1]);
    expect(decodeYolo(h.tensor(), { iouThreshold: 0.7, maxDetections: 2 })[0].map((d) => d.score.toFixed(2))).toEqual(['0.90', '0.80']);
  });

  it('inverts the target encoding: logits set from the targets decode to the ground-truth boxes', () => {
    const objects: LabeledBox[][] = [
      [
        { classId: 0, box: { cx: 0.2, cy: 0.3, w: 0.1, h: 0.2 } },
        { classId: 2, box: { cx: 0.7, cy: 0.8, w: 0.3, h: 0.25 } },
      ],
      [{ classId: 1, box: { cx: 0.55, cy: 0.45, w: 0.5, h: 0.4 } }],
    ];
    const s = 3;
    const t = encodeYoloTargets(objects, s, 3);
    const h = head(2, 3, s);
    for (let b = 0; b < 2; b++) {
      for (let cell = 0; cell < s * s; cell++) {
        const row = Math.floor(cell / s);
        const col = cell % s;
        const i = b * s * s + cell;
        h.set(b, 0, row, col, t.objectness[i] > 0 ? 8 : -8);
        for (let k = 0; k < 4; k++) h.set(b, 1 + k, row, col, logit(Math.min(0.999, Math.max(0.001, t.box[(b * 4 + k) * s * s + cell]))));
        h.set(b, 5 + t.classes[i], row, col, 8);
      }
    }
    const decoded = decodeYolo(h.tensor(), { scoreThreshold: 0.5 });
    decoded.forEach((dets, b) => {
      const sorted = [...dets].sort((p, q) => p.classId - q.classId);
      const truth = [...objects[b]].sort((p, q) => p.classId - q.classId);
      expect(sorted.map((d) => d.classId)).toEqual(truth.map((o) => o.classId));
      sorted.forEach((d, j) => {
        for (const key of ['cx', 'cy', 'w', 'h'] as const) expect(d.box[key]).toBeCloseTo(truth[j].box[key], 4);
      });
    });
  });
});
