// The generated vision sets: determinism, box correctness against the rendered ink, masks against
// the pixels, the shared canvases of detection and segmentation, target gathering, speed, errors.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DatasetError,
  GENERATED_STATS,
  SEGMENTATION_THRESHOLD,
  VisionSampleRenderer,
  gatherSamples,
  gatherTargets,
  generateDataset,
  generateFromDigits,
  loadDataset,
  resizeDigit,
  type Dataset,
  type GeneratedDataset,
} from '../src/index.ts';

let mnist: Dataset;

/** Byte equality of two typed arrays (vitest's deep equality walks them element by element, slowly). */
function same(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
beforeAll(async () => {
  mnist = await loadDataset('mnist', 'train');
});

/** Box j of a dataset in pixels: [x0, x1) × [y0, y1). */
function pixelBox(ds: GeneratedDataset, j: number): [number, number, number, number] {
  const [cx, cy, w, h] = ds.boxes.subarray(4 * j, 4 * j + 4);
  const s = ds.width;
  return [Math.round((cx - w / 2) * s), Math.round((cy - h / 2) * s), Math.round((cx + w / 2) * s), Math.round((cy + h / 2) * s)];
}

describe('generated datasets', () => {
  it('are deterministic: same seed same bytes, another seed other bytes, and n samples are a prefix of n + k', () => {
    for (const name of ['mnist-localization', 'mnist-detection', 'mnist-segmentation'] as const) {
      const a = generateFromDigits(name, 'train', mnist, { count: 40, seed: 7 });
      const b = generateFromDigits(name, 'train', mnist, { count: 40, seed: 7 });
      const c = generateFromDigits(name, 'train', mnist, { count: 40, seed: 8 });
      const prefix = generateFromDigits(name, 'train', mnist, { count: 15, seed: 7 });
      expect(same(a.images, b.images) && same(a.boxes, b.boxes) && same(a.boxLabels, b.boxLabels) && same(a.boxOffsets, b.boxOffsets) && same(a.labels, b.labels)).toBe(true);
      expect(a.masks === null || same(a.masks, b.masks!)).toBe(true);
      expect(same(a.images, c.images)).toBe(false);
      expect(same(prefix.images, a.images.subarray(0, prefix.images.length))).toBe(true);
      expect(same(prefix.boxes, a.boxes.subarray(0, prefix.boxes.length))).toBe(true);
      expect(same(prefix.boxOffsets, a.boxOffsets.subarray(0, 16))).toBe(true);
    }
  });

  it('mnist-localization: one digit per 64x64 canvas whose box is the tight box of all the ink', () => {
    const ds = generateFromDigits('mnist-localization', 'train', mnist, { count: 300, seed: 1 });
    expect([ds.task, ds.channels, ds.height, ds.width, ds.numClasses, ds.masks]).toEqual(['localization', 1, 64, 64, 10, null]);
    expect(Array.from(ds.boxOffsets.subarray(0, 4))).toEqual([0, 1, 2, 3]);
    expect(ds.boxLabels).toEqual(ds.labels);
    const sizes: number[] = [];
    for (let i = 0; i < ds.count; i++) {
      const img = ds.images.subarray(i * 4096, (i + 1) * 4096);
      let x0 = 64;
      let y0 = 64;
      let x1 = 0;
      let y1 = 0;
      for (let p = 0; p < 4096; p++) {
        if (img[p] === 0) continue;
        const x = p % 64;
        const y = Math.floor(p / 64);
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x + 1);
        y1 = Math.max(y1, y + 1);
      }
      expect(pixelBox(ds, i)).toEqual([x0, y0, x1, y1]);
      sizes.push(y1 - y0);
    }
    expect(Math.min(...sizes)).toBeLessThan(20);
    expect(Math.max(...sizes)).toBeGreaterThan(36);
    expect(new Set(ds.labels).size).toBe(10);
  });

  it('mnist-detection: 1–4 digits per 96x96 canvas; all ink inside the boxes, ink on every box edge', () => {
    const ds = generateFromDigits('mnist-detection', 'train', mnist, { count: 200, seed: 2 });
    const perImage = new Map<number, number>();
    for (let i = 0; i < ds.count; i++) {
      const first = ds.boxOffsets[i];
      const last = ds.boxOffsets[i + 1];
      perImage.set(last - first, (perImage.get(last - first) ?? 0) + 1);
      expect(ds.labels[i]).toBe(ds.boxLabels[first]);
      const img = ds.images.subarray(i * 9216, (i + 1) * 9216);
      const boxes = Array.from({ length: last - first }, (_, k) => pixelBox(ds, first + k));
      let outside = 0;
      for (let p = 0; p < 9216; p++) {
        if (img[p] === 0) continue;
        const x = p % 96;
        const y = Math.floor(p / 96);
        if (!boxes.some(([x0, y0, x1, y1]) => x >= x0 && x < x1 && y >= y0 && y < y1)) outside++;
      }
      expect(outside, `image ${i}: ink pixels outside every box`).toBe(0);
      // max() compositing never darkens ink, so each digit's tight box keeps ink on all four edges.
      for (const [x0, y0, x1, y1] of boxes) {
        const ink = (x: number, y: number): boolean => img[y * 96 + x] > 0;
        const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, k) => a + k);
        expect(range(x0, x1).some((x) => ink(x, y0)) && range(x0, x1).some((x) => ink(x, y1 - 1))).toBe(true);
        expect(range(y0, y1).some((y) => ink(x0, y)) && range(y0, y1).some((y) => ink(x1 - 1, y))).toBe(true);
      }
    }
    expect([...perImage.keys()].sort()).toEqual([1, 2, 3, 4]);
    for (const v of ds.boxes) expect(v > 0 && v <= 1).toBe(true);
  });

  it('mnist-segmentation: the canvases of mnist-detection, a class map that is 1 + digit exactly where the ink is above the threshold', () => {
    const det = generateFromDigits('mnist-detection', 'train', mnist, { count: 60, seed: 3 });
    const seg = generateFromDigits('mnist-segmentation', 'train', mnist, { count: 60, seed: 3 });
    expect(same(seg.images, det.images) && same(seg.boxes, det.boxes) && same(seg.boxLabels, det.boxLabels)).toBe(true);
    expect([seg.numClasses, seg.classNames[0], seg.classNames[10]]).toEqual([11, 'background', '9']);
    const masks = seg.masks!;
    expect(masks.length).toBe(60 * 9216);
    for (let i = 0; i < seg.count; i++) {
      const classes = new Set(Array.from(seg.boxLabels.subarray(seg.boxOffsets[i], seg.boxOffsets[i + 1])).map((c) => c + 1));
      const boxes = Array.from({ length: seg.boxOffsets[i + 1] - seg.boxOffsets[i] }, (_, k) => [seg.boxLabels[seg.boxOffsets[i] + k] + 1, ...pixelBox(seg, seg.boxOffsets[i] + k)]);
      let wrong = 0;
      for (let p = i * 9216; p < (i + 1) * 9216; p++) {
        const m = masks[p];
        if (m > 0 !== seg.images[p] > SEGMENTATION_THRESHOLD) wrong++;
        if (m === 0) continue;
        const x = (p % 9216) % 96;
        const y = Math.floor((p % 9216) / 96);
        if (!classes.has(m) || !boxes.some(([c, x0, y0, x1, y1]) => c === m && x >= x0 && x < x1 && y >= y0 && y < y1)) wrong++;
      }
      expect(wrong, `image ${i}: mask pixels that disagree with the ink or lie outside a box of their class`).toBe(0);
    }
  });

  it('renders any sample alone, identical to the materialised set', () => {
    const ds = generateFromDigits('mnist-segmentation', 'train', mnist, { count: 12, seed: 4 });
    const renderer = new VisionSampleRenderer('mnist-segmentation', 'train', 4, mnist);
    const image = new Uint8Array(9216);
    const mask = new Uint8Array(9216);
    const placed = renderer.render(11, image, mask);
    expect(same(image, ds.images.subarray(11 * 9216))).toBe(true);
    expect(same(mask, ds.masks!.subarray(11 * 9216))).toBe(true);
    expect(placed.map((d) => d.classId)).toEqual(Array.from(ds.boxLabels.subarray(ds.boxOffsets[11], ds.boxOffsets[12])));
  });

  it('resizeDigit keeps the ink box of a digit scaled up or down', () => {
    const full = resizeDigit(mnist, 0, 28);
    expect(same(full.pixels, mnist.images.subarray(0, 784))).toBe(true); // scale 1 is the identity
    const big = resizeDigit(mnist, 0, 56);
    expect(big.x1 - big.x0).toBeGreaterThanOrEqual(2 * (full.x1 - full.x0) - 2);
    expect(big.x1 - big.x0).toBeLessThanOrEqual(2 * (full.x1 - full.x0) + 2);
  });

  it('gatherTargets re-indexes the boxes and masks of the selected samples', () => {
    const ds = generateFromDigits('mnist-segmentation', 'train', mnist, { count: 20, seed: 5 });
    const indices = [7, 2, 19, 2];
    const t = gatherTargets(ds, indices);
    const { images, labels } = gatherSamples(ds, indices);
    expect(labels).toEqual(t.labels);
    indices.forEach((i, k) => {
      expect(t.boxOffsets[k + 1] - t.boxOffsets[k]).toBe(ds.boxOffsets[i + 1] - ds.boxOffsets[i]);
      expect(t.boxes.subarray(4 * t.boxOffsets[k], 4 * t.boxOffsets[k + 1])).toEqual(ds.boxes.subarray(4 * ds.boxOffsets[i], 4 * ds.boxOffsets[i + 1]));
      expect(t.boxLabels.subarray(t.boxOffsets[k], t.boxOffsets[k + 1])).toEqual(ds.boxLabels.subarray(ds.boxOffsets[i], ds.boxOffsets[i + 1]));
      expect(same(t.masks!.subarray(k * 9216, (k + 1) * 9216), ds.masks!.subarray(i * 9216, (i + 1) * 9216))).toBe(true);
      expect(same(images.subarray(k * 9216, (k + 1) * 9216), ds.images.subarray(i * 9216, (i + 1) * 9216))).toBe(true);
    });
    expect(() => gatherTargets(ds, [20])).toThrow(/gatherTargets: index 20 at position 0 is out of range \[0, 20\)/);
  });

  it('generates 2000 detection canvases with the documented pixel statistics', () => {
    const ds = generateFromDigits('mnist-detection', 'train', mnist, { count: 2000, seed: 0 });
    let sum = 0;
    let sq = 0;
    for (const v of ds.images) {
      sum += v / 255;
      sq += (v / 255) ** 2;
    }
    const mean = sum / ds.images.length;
    expect(mean).toBeCloseTo(GENERATED_STATS.multi.mean, 3);
    expect(Math.sqrt(sq / ds.images.length - mean * mean)).toBeCloseTo(GENERATED_STATS.multi.std, 3);
    expect(ds.mean).toEqual([GENERATED_STATS.multi.mean]);
  });

  it('generateDataset draws the test split from the MNIST test digits', async () => {
    const ds = await generateDataset('mnist-localization', 'test', { count: 5, seed: 9 });
    expect(ds.split).toBe('test');
    expect(same(ds.images, generateFromDigits('mnist-localization', 'test', await loadDataset('mnist', 'test'), { count: 5, seed: 9 }).images)).toBe(true);
    expect(same(ds.images, generateFromDigits('mnist-localization', 'test', mnist, { count: 5, seed: 9 }).images)).toBe(false);
    expect((await generateDataset('mnist-localization', 'train', { seed: 1 })).count).toBe(10_000);
  });

  it.each([
    ['an unknown name', () => generateFromDigits('mnist-pose' as never, 'train', mnist), /mnist-pose: unknown generated dataset; expected one of mnist-localization, mnist-detection, mnist-segmentation/],
    ['an unknown split', () => generateFromDigits('mnist-detection', 'val' as never, mnist), /mnist-detection: unknown split "val"/],
    ['a zero count', () => generateFromDigits('mnist-detection', 'train', mnist, { count: 0 }), /mnist-detection: count must be an integer in \[1, 100000\], got 0/],
    ['a negative seed', () => generateFromDigits('mnist-detection', 'train', mnist, { count: 1, seed: -1 }), /mnist-detection: seed must be an integer in \[0, 2\^32\), got -1/],
  ])('rejects %s', (_title, fn, pattern) => {
    expect(fn).toThrow(DatasetError);
    expect(fn).toThrow(pattern);
  });
});
