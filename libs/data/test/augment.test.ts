import { describe, expect, it } from 'vitest';
import { augmentDraw, augmentInto, loadDataset } from '../src/index.ts';

/** Reference: pad with zeros, crop at (dy, dx), then flip — written out the slow, obvious way. */
function reference(img: Uint8Array, c: number, h: number, w: number, pad: number, dy: number, dx: number, flip: boolean): Uint8Array {
  const ph = h + 2 * pad;
  const pw = w + 2 * pad;
  const padded = new Uint8Array(c * ph * pw);
  for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) padded[(ch * ph + y + pad) * pw + x + pad] = img[(ch * h + y) * w + x];
  const cropped = new Uint8Array(c * h * w);
  for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) cropped[(ch * h + y) * w + x] = padded[(ch * ph + y + dy) * pw + x + dx];
  if (!flip) return cropped;
  const out = new Uint8Array(c * h * w);
  for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(ch * h + y) * w + x] = cropped[(ch * h + y) * w + (w - 1 - x)];
  return out;
}

/** `count` real MNIST digits as a 3-channel batch (the digit, its inverse, a constant plane). */
async function batch(count: number): Promise<{ images: Uint8Array; indices: Uint32Array }> {
  const ds = await loadDataset('mnist', 'test');
  const plane = 28 * 28;
  const images = new Uint8Array(count * 3 * plane);
  for (let k = 0; k < count; k++) {
    const digit = ds.images.subarray(k * plane, (k + 1) * plane);
    images.set(digit, k * 3 * plane);
    images.set(digit.map((v) => 255 - v), (k * 3 + 1) * plane);
    images.fill(k, (k * 3 + 2) * plane, (k * 3 + 3) * plane);
  }
  return { images, indices: Uint32Array.from({ length: count }, (_, k) => 1000 + 7 * k) };
}

describe('augmentInto', () => {
  it.each([
    [4, true],
    [4, false],
    [2, true],
    [0, true],
  ])('matches pad-crop-flip done by hand (crop %i, flip %s)', async (crop, flip) => {
    const { images, indices } = await batch(24);
    const original = images.slice();
    augmentInto(images, indices, 3, 28, 28, { crop, flip }, 5, 2);
    const size = 3 * 28 * 28;
    let changed = 0;
    for (let k = 0; k < indices.length; k++) {
      const { dy, dx, flip: f } = augmentDraw({ crop, flip }, 5, 2, indices[k]);
      expect(dy >= 0 && dy <= 2 * crop && dx >= 0 && dx <= 2 * crop).toBe(true);
      if (!flip) expect(f).toBe(false);
      const want = reference(original.subarray(k * size, (k + 1) * size), 3, 28, 28, crop, dy, dx, f);
      const got = images.subarray(k * size, (k + 1) * size);
      expect(Buffer.compare(Buffer.from(got), Buffer.from(want)), `sample ${k}`).toBe(0);
      if (Buffer.compare(Buffer.from(got), Buffer.from(original.subarray(k * size, (k + 1) * size))) !== 0) changed++;
    }
    expect(changed).toBeGreaterThan(5); // a good share of the 24 moved or flipped (flip alone: about half)
  });

  it('flips about half of the samples', () => {
    let flips = 0;
    for (let i = 0; i < 2000; i++) if (augmentDraw({ flip: true }, 1, 0, i).flip) flips++;
    expect(flips).toBeGreaterThan(900);
    expect(flips).toBeLessThan(1100);
  });

  it('gives the same pixels whatever the shard split', async () => {
    const { images, indices } = await batch(20);
    const whole = images.slice();
    augmentInto(whole, indices, 3, 28, 28, { crop: 3, flip: true }, 11, 4);
    const size = 3 * 28 * 28;
    const parts = [0, 3, 4, 11, 20];
    for (let s = 0; s + 1 < parts.length; s++) {
      const shard = images.slice(parts[s] * size, parts[s + 1] * size);
      augmentInto(shard, indices.subarray(parts[s], parts[s + 1]), 3, 28, 28, { crop: 3, flip: true }, 11, 4);
      expect(Buffer.compare(Buffer.from(shard), Buffer.from(whole.subarray(parts[s] * size, parts[s + 1] * size)))).toBe(0);
    }
  });

  it('changes with the epoch and the seed, not otherwise', () => {
    const draws = (seed: number, epoch: number) => Array.from({ length: 50 }, (_, i) => augmentDraw({ crop: 4, flip: true }, seed, epoch, i));
    expect(draws(1, 0)).toEqual(draws(1, 0));
    expect(draws(1, 1)).not.toEqual(draws(1, 0));
    expect(draws(2, 0)).not.toEqual(draws(1, 0));
  });

  it('leaves the images alone when nothing is asked, and checks its arguments', async () => {
    const { images, indices } = await batch(4);
    const before = images.slice();
    augmentInto(images, indices, 3, 28, 28, {}, 1, 0);
    augmentInto(images, indices, 3, 28, 28, { crop: 0, flip: false }, 1, 0);
    expect(Buffer.compare(Buffer.from(images), Buffer.from(before))).toBe(0);
    expect(() => augmentInto(images, indices, 3, 28, 28, { crop: 28 }, 1, 0)).toThrow(/crop must be an integer in \[0, 27\]/);
    expect(() => augmentInto(images, indices.subarray(0, 3), 3, 28, 28, { flip: true }, 1, 0)).toThrow(/3 images of 3×28×28 need/);
  });
});
