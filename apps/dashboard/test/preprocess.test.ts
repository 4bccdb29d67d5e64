import { describe, expect, it } from 'vitest';
import { inkFromRgba, normalize, preprocessDigit, resizeArea } from '../src/preprocess.ts';

/** An RGBA image of `w × h` filled with `bg`, with the rectangles in `ink` painted `fg` (grey levels). */
function image(w: number, h: number, bg: number, fg: number, rects: [number, number, number, number][]) {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < w * h; i++) data.set([bg, bg, bg, 255], i * 4);
  for (const [rx, ry, rw, rh] of rects) {
    for (let y = ry; y < ry + rh; y++) for (let x = rx; x < rx + rw; x++) data.set([fg, fg, fg, 255], (y * w + x) * 4);
  }
  return { width: w, height: h, data };
}

function centreOfMass(p: Float32Array, size: number): [number, number] {
  let m = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      m += p[y * size + x];
      mx += p[y * size + x] * (x + 0.5);
      my += p[y * size + x] * (y + 0.5);
    }
  }
  return [mx / m, my / m];
}

describe('resizeArea', () => {
  it('averages 2×2 blocks when halving', () => {
    const src = Float32Array.from([1, 3, 5, 7, 2, 4, 6, 8, 0, 0, 1, 1, 0, 0, 1, 1]);
    expect([...resizeArea(src, 4, 4, 2, 2)]).toEqual([2.5, 6.5, 0, 1]);
  });

  it('weights fractional coverage: 3 → 2 samples', () => {
    // Output 0 covers [0, 1.5): 1·a + 0.5·b over 1.5; output 1 covers [1.5, 3).
    const out = resizeArea(Float32Array.from([3, 6, 9]), 3, 1, 2, 1);
    expect(out[0]).toBeCloseTo((3 + 0.5 * 6) / 1.5, 6);
    expect(out[1]).toBeCloseTo((0.5 * 6 + 9) / 1.5, 6);
  });

  it('keeps the mean of the image (area sampling preserves mass)', () => {
    const src = new Float32Array(37 * 23).map((_, i) => (i * 7919) % 13);
    const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(resizeArea(src, 37, 23, 20, 11))).toBeCloseTo(mean(src), 4);
  });

  it('rejects a source whose length does not match its size', () => {
    expect(() => resizeArea(new Float32Array(5), 2, 3, 1, 1)).toThrow(/2×3 needs 6 values, got 5/);
  });
});

describe('inkFromRgba', () => {
  it('reads white on black as ink without inverting', () => {
    const { ink, inverted } = inkFromRgba(image(10, 10, 0, 255, [[4, 4, 2, 2]]));
    expect(inverted).toBe(false);
    expect(ink[4 * 10 + 4]).toBe(1);
    expect(ink[0]).toBe(0);
  });

  it('inverts dark ink on light paper and stretches the paper grey to 0', () => {
    const { ink, inverted } = inkFromRgba(image(10, 10, 220, 30, [[2, 2, 3, 6]]));
    expect(inverted).toBe(true);
    expect(ink[3 * 10 + 3]).toBe(1);
    expect(ink[9 * 10 + 9]).toBe(0);
  });

  it('names the sizes when the buffer is wrong', () => {
    expect(() => inkFromRgba({ width: 3, height: 3, data: new Uint8ClampedArray(10) })).toThrow(/3×3 needs 36 RGBA bytes, got 10/);
  });
});

describe('preprocessDigit', () => {
  it('returns null for an empty canvas', () => {
    expect(preprocessDigit(image(50, 50, 0, 0, []))).toBeNull();
  });

  for (const [label, rect] of [
    ['a tall bar in the top-left corner', [10, 5, 30, 120]],
    ['a wide bar at the bottom right', [150, 230, 120, 30]],
    ['a square in the middle', [100, 100, 80, 80]],
  ] as const) {
    it(`scales ${label} so its longer side is 20 px and centres its mass at (14, 14)`, () => {
      const r = preprocessDigit(image(280, 280, 0, 255, [rect as unknown as [number, number, number, number]]))!;
      expect(r.size).toBe(28);
      expect(r.bbox).toEqual({ x: rect[0], y: rect[1], width: rect[2], height: rect[3] });
      let x0 = 28;
      let x1 = -1;
      let y0 = 28;
      let y1 = -1;
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          if (r.pixels[y * 28 + x] > 0.01) {
            x0 = Math.min(x0, x);
            x1 = Math.max(x1, x);
            y0 = Math.min(y0, y);
            y1 = Math.max(y1, y);
          }
        }
      }
      expect(Math.max(x1 - x0 + 1, y1 - y0 + 1)).toBe(20);
      const [cx, cy] = centreOfMass(r.pixels, 28);
      expect(Math.abs(cx - 14)).toBeLessThanOrEqual(0.5);
      expect(Math.abs(cy - 14)).toBeLessThanOrEqual(0.5);
    });
  }

  it('keeps the aspect ratio: a 4:1 bar becomes 5×20', () => {
    const r = preprocessDigit(image(200, 200, 0, 255, [[90, 20, 40, 160]]))!;
    const cols = new Set<number>();
    for (let i = 0; i < 784; i++) if (r.pixels[i] > 0.5) cols.add(i % 28);
    expect(cols.size).toBe(5);
  });

  it('gives the same field for a dark-on-light photo as for its light-on-dark negative', () => {
    const a = preprocessDigit(image(120, 90, 0, 255, [[30, 10, 20, 70], [30, 10, 50, 15]]))!;
    const b = preprocessDigit(image(120, 90, 255, 0, [[30, 10, 20, 70], [30, 10, 50, 15]]))!;
    expect(b.inverted).toBe(true);
    for (let i = 0; i < 784; i++) expect(b.pixels[i]).toBeCloseTo(a.pixels[i], 5);
  });
});

describe('normalize', () => {
  it('applies (v - mean) / std', () => {
    const out = normalize(Float32Array.from([0, 1]), 0.1307, 0.3081);
    expect(out[0]).toBeCloseTo(-0.1307 / 0.3081, 6);
    expect(out[1]).toBeCloseTo((1 - 0.1307) / 0.3081, 6);
  });

  it('refuses a non-positive std', () => {
    expect(() => normalize(new Float32Array(1), 0, 0)).toThrow(/std must be > 0, got 0/);
  });
});
