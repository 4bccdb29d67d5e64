import { describe, expect, it } from 'vitest';
import { buildModel, decodeYolo, fromData, getZooSpec, noGrad, type Detection } from '@stride/cnn';
import {
  aboveScore,
  argmaxMask,
  boxToRect,
  classColor,
  classCounts,
  detectionLabel,
  drawDetections,
  labelRect,
  maskToRgba,
  padGeometry,
  padToInput,
  segmentationClassNames,
  segmentationColor,
  taskOfCheckpoint,
  textColorOn,
  type Draw2d,
} from '../src/ui/vision.ts';

/** A `px × px` RGBA pad, `bg` grey, with rectangles `[x, y, w, h]` (in pad pixels) painted `fg`. */
function pad(px: number, bg: number, fg: number, rects: [number, number, number, number][]) {
  const data = new Uint8ClampedArray(px * px * 4);
  for (let i = 0; i < px * px; i++) data.set([bg, bg, bg, 255], i * 4);
  for (const [rx, ry, rw, rh] of rects) {
    for (let y = ry; y < ry + rh; y++) for (let x = rx; x < rx + rw; x++) data.set([fg, fg, fg, 255], (y * px + x) * 4);
  }
  return { width: px, height: px, data };
}

/** Bounding box `[x0, y0, x1, y1]` (exclusive ends) of the values above `t` in a `side × side` plane. */
function inkBox(p: Float32Array, side: number, t = 0.5): [number, number, number, number] {
  let x0 = side;
  let y0 = side;
  let x1 = 0;
  let y1 = 0;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      if (p[y * side + x] > t) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x + 1);
        y1 = Math.max(y1, y + 1);
      }
    }
  }
  return [x0, y0, x1, y1];
}

describe('padGeometry', () => {
  it('makes the pad an integer multiple of the input near 288 px, the pen ~3.3 input pixels', () => {
    expect(padGeometry(64)).toEqual({ side: 64, scale: 5, px: 320, pen: 17 });
    expect(padGeometry(96)).toEqual({ side: 96, scale: 3, px: 288, pen: 10 });
    expect(padGeometry(400)).toMatchObject({ scale: 1, px: 400 });
    expect(() => padGeometry(0)).toThrow(/side must be an integer >= 1, got 0/);
  });
});

describe('padToInput (the pad as a 64×64 or 96×96 input)', () => {
  for (const side of [64, 96]) {
    it(`keeps the drawing where it is on a ${side}×${side} input, area-averaged`, () => {
      const { scale, px } = padGeometry(side);
      // Two "digits" (bars) at known input coordinates, drawn at the pad's scale.
      const a: [number, number, number, number] = [5, 7, 4, 20];
      const b: [number, number, number, number] = [side - 20, side - 30, 12, 3];
      const img = pad(px, 0, 255, [a, b].map(([x, y, w, h]) => [x * scale, y * scale, w * scale, h * scale]));
      const input = padToInput(img, side)!;
      expect(input).toHaveLength(side * side);
      // Full ink inside each bar, none around them, nothing moved or rescaled.
      expect(input[(a[1] + 10) * side + a[0] + 1]).toBeCloseTo(1, 6);
      expect(input[(b[1] + 1) * side + b[0] + 5]).toBeCloseTo(1, 6);
      expect(input[0]).toBe(0);
      expect(input[(side - 1) * side + side - 1]).toBe(0);
      const left = new Float32Array(side * side);
      for (let y = 0; y < side; y++) for (let x = 0; x < side / 2; x++) left[y * side + x] = input[y * side + x];
      expect(inkBox(left, side)).toEqual([a[0], a[1], a[0] + a[2], a[1] + a[3]]);
      let total = 0;
      for (const v of input) total += v;
      expect(total).toBeCloseTo(a[2] * a[3] + b[2] * b[3], 2);
    });
  }

  it('averages a stroke that covers part of an input pixel', () => {
    const { scale, px } = padGeometry(96); // 3 pad pixels per input pixel
    const img = pad(px, 0, 255, [[30, 30, 1, 3]]); // one pad column of input pixel (10, 10)
    const input = padToInput(img, 96)!;
    expect(input[10 * 96 + 10]).toBeCloseTo(1 / scale, 5);
  });

  it('reads a photo of dark ink on light paper like a drawing of white on black', () => {
    const { scale, px } = padGeometry(64);
    const rects: [number, number, number, number][] = [[10 * scale, 12 * scale, 6 * scale, 30 * scale]];
    const drawn = padToInput(pad(px, 0, 255, rects), 64)!;
    const photo = padToInput(pad(px, 235, 30, rects), 64)!;
    expect(inkBox(photo, 64)).toEqual(inkBox(drawn, 64));
    expect(photo[20 * 64 + 12]).toBeCloseTo(1, 5);
    expect(photo[0]).toBe(0);
  });

  it('returns null for an empty pad, rejects a non-square one', () => {
    expect(padToInput(pad(288, 0, 255, []), 96)).toBeNull();
    expect(() => padToInput({ width: 4, height: 2, data: new Uint8ClampedArray(32) }, 2)).toThrow(/must be square, got 4×2/);
  });
});

describe('colours', () => {
  it('gives the ten digits ten distinct colours, more classes golden-angle hues', () => {
    const digits = Array.from({ length: 10 }, (_, i) => classColor(i).join());
    expect(new Set(digits).size).toBe(10);
    const more = Array.from({ length: 30 }, (_, i) => classColor(10 + i));
    for (const c of more) for (const v of c) expect(v >= 0 && v <= 255 && Number.isInteger(v)).toBe(true);
    expect(new Set(more.map((c) => c.join())).size).toBe(30);
    expect(() => classColor(-1)).toThrow(/class must be an integer >= 0, got -1/);
  });

  it('picks label text that contrasts with the tab', () => {
    expect(textColorOn([234, 179, 8])).toBe('#111'); // yellow
    expect(textColorOn([59, 130, 246])).toBe('#fff'); // blue
    expect(textColorOn([132, 204, 22])).toBe('#111'); // lime
    expect(textColorOn([255, 255, 255])).toBe('#111');
    expect(textColorOn([0, 0, 0])).toBe('#fff');
  });

  it('names segmentation classes with the background first and colours digit d as in detection', () => {
    const digits = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
    const names = segmentationClassNames(11, digits);
    expect(names).toEqual(['background', ...digits]);
    expect(segmentationClassNames(11, ['background', ...digits])).toEqual(names);
    expect(segmentationClassNames(3, undefined)).toEqual(['background', '0', '1']);
    expect(segmentationColor(0, names)).toBeNull();
    expect(segmentationColor(4, names)).toEqual(classColor(3));
    // Without a background class every class has a colour.
    expect(segmentationColor(0, ['cat', 'dog'])).toEqual(classColor(0));
  });
});

describe('segmentation overlay', () => {
  it('takes the arg-max class of every pixel of [1, K, H, W] logits', () => {
    // K = 3, 2×2 pixels; class c of pixel p is data[c·4 + p].
    const logits = Float32Array.from([5, 0, 0, 1, 0, 6, 0, 1, 0, 0, 7, 2]);
    expect([...argmaxMask(logits, 3, 2, 2)]).toEqual([0, 1, 2, 2]);
    expect(classCounts(argmaxMask(logits, 3, 2, 2), 3)).toEqual([1, 1, 2]);
    expect(() => argmaxMask(logits, 3, 3, 3)).toThrow(/needs 27/);
  });

  it('agrees with the arg-max of a real U-Net output', () => {
    const model = buildModel(getZooSpec('unet', { height: 16, width: 16, numClasses: 4, depth: 2 }));
    const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 0.37));
    const out = noGrad(() => model.forward(fromData(x, [1, 1, 16, 16])));
    const mask = argmaxMask(out.data, 4, 16, 16);
    for (const p of [0, 17, 100, 255]) {
      const scores = [0, 1, 2, 3].map((c) => out.data[c * 256 + p]);
      expect(mask[p]).toBe(scores.indexOf(Math.max(...scores)));
    }
  });

  it('paints each class in its colour and leaves the background transparent', () => {
    const names = segmentationClassNames(11, undefined);
    const rgba = maskToRgba(Uint8Array.from([0, 1, 10]), (c) => segmentationColor(c, names));
    expect([...rgba.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect([...rgba.subarray(4, 8)]).toEqual([...classColor(0), 255]);
    expect([...rgba.subarray(8, 12)]).toEqual([...classColor(9), 255]);
    expect(maskToRgba(Uint8Array.from([1]), () => [1, 2, 3], 0.5)[3]).toBe(128);
  });
});

describe('boxes', () => {
  it('converts a normalised box to pixels, clipped to the image', () => {
    expect(boxToRect({ cx: 0.5, cy: 0.25, w: 0.5, h: 0.25 }, 64)).toEqual({ x: 16, y: 8, w: 32, h: 16 });
    const r = boxToRect({ cx: 0.05, cy: 0.95, w: 0.2, h: 0.2 }, 100);
    expect([r.x, r.y, r.w, r.h].map((v) => Number(v.toFixed(9)))).toEqual([0, 85, 15, 15]);
  });

  it('puts the label above the box, inside it at the top edge, never past the right edge', () => {
    expect(labelRect({ x: 10, y: 40, w: 20, h: 20 }, 30, 12, 100)).toEqual({ x: 10, y: 28, w: 30, h: 12 });
    expect(labelRect({ x: 10, y: 5, w: 20, h: 20 }, 30, 12, 100)).toEqual({ x: 10, y: 5, w: 30, h: 12 });
    expect(labelRect({ x: 90, y: 50, w: 10, h: 10 }, 30, 12, 100)).toEqual({ x: 70, y: 38, w: 30, h: 12 });
  });

  it('labels a detection with its class name and score', () => {
    expect(detectionLabel({ classId: 7, score: 0.934 }, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])).toBe('7 · 93%');
    expect(detectionLabel({ classId: 2, score: 0.5 }, undefined)).toBe('2 · 50%');
  });

  it('filters by score the same as decoding at that score (NMS lets only higher scores suppress)', () => {
    const model = buildModel(getZooSpec('yolo', { height: 32, width: 32, numClasses: 3, gridSize: 4 }));
    const x = Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i * 0.11) * 2);
    const out = noGrad(() => model.forward(fromData(x, [1, 1, 32, 32])));
    const all = decodeYolo(out, { scoreThreshold: 0, iouThreshold: 0.3 })[0];
    expect(all.length).toBeGreaterThan(1);
    const t = all[Math.floor(all.length / 2)].score;
    expect(aboveScore(all, t)).toEqual(decodeYolo(out, { scoreThreshold: t, iouThreshold: 0.3 })[0]);
  });

  it('draws each box in its class colour with its label, the best last (on top)', () => {
    const calls: string[] = [];
    const ctx: Draw2d = {
      lineWidth: 0,
      strokeStyle: '',
      fillStyle: '',
      font: '',
      textBaseline: '',
      clearRect: (...a) => calls.push(`clear ${a.join(' ')}`),
      strokeRect: (...a) => calls.push(`stroke ${String(ctx.strokeStyle)} ${a.map((v) => Math.round(v)).join(' ')}`),
      fillRect: (...a) => calls.push(`fill ${String(ctx.fillStyle)} ${a.map((v) => Math.round(v)).join(' ')}`),
      fillText: (t, x, y) => calls.push(`text ${String(ctx.fillStyle)} ${t} ${Math.round(x)} ${Math.round(y)}`),
      measureText: (t) => ({ width: t.length * 6 }),
    };
    const dets: Detection[] = [
      { classId: 3, score: 0.9, box: { cx: 0.5, cy: 0.5, w: 0.5, h: 0.5 } },
      { classId: 5, score: 0.4, box: { cx: 0.25, cy: 0.25, w: 0.1, h: 0.1 } },
    ];
    drawDetections(ctx, dets, 300, undefined);
    expect(calls[0]).toBe('clear 0 0 300 300');
    const strokes = calls.filter((c) => c.startsWith('stroke'));
    expect(strokes).toHaveLength(2);
    expect(strokes[0]).toMatch(/^stroke rgb\(234, 179, 8\) 6[0-9] 6[0-9]/); // class 5 (score 0.4) first
    expect(strokes[1]).toMatch(/^stroke rgb\(239, 68, 68\) 7[0-9] 7[0-9] 1[45]\d 1[45]\d$/); // class 3 box 75..225
    const texts = calls.filter((c) => c.startsWith('text'));
    expect(texts[0]).toMatch(/^text #111 5 · 40% /); // dark text on the yellow tab
    expect(texts[1]).toMatch(/^text #fff 3 · 90% /);
    // The label of the class-3 box sits just above it (y < 75), at its left edge.
    const [, , , , , x, y] = texts[1].split(' ');
    expect(Number(y)).toBeLessThan(75);
    expect(Number(x)).toBeGreaterThanOrEqual(75);
  });
});

describe('taskOfCheckpoint', () => {
  const modelSpec = (name: string) => ({ name, input: [1, 28, 28], layers: [] }) as never;
  it('reads the task from the spec, the dataset, else the model', () => {
    expect(taskOfCheckpoint({ spec: { dataset: 'mnist-detection' } as never, modelSpec: modelSpec('yolo') })).toBe('detection');
    expect(taskOfCheckpoint({ spec: { dataset: 'custom', task: 'segmentation' } as never, modelSpec: modelSpec('x') })).toBe('segmentation');
    expect(taskOfCheckpoint({ spec: { dataset: 'mnist' } as never, modelSpec: modelSpec('lenet5') })).toBe('classification');
    expect(taskOfCheckpoint({ spec: {} as never, modelSpec: modelSpec('localizer') })).toBe('localization');
  });
});
