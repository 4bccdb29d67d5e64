import { describe, expect, it } from 'vitest';
import { createRng } from '@stride/cnn';
import { DatasetError, decodeImage, readImageHeader, resizePlanes, toPlanes } from '../src/index.ts';
import { gradientRgb, jpegBytes, jpegDeclaring, pngBomb, pngBytes, pngRaw } from './image-fixtures.ts';

function expectDatasetError(fn: () => unknown, source: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a DatasetError').toBeInstanceOf(DatasetError);
  expect((caught as DatasetError).source).toBe(source);
  expect((caught as DatasetError).message).toMatch(message);
}

describe('decodeImage: PNG', () => {
  it('decodes an RGB PNG to its exact pixels', () => {
    const rgb = gradientRgb(5, 4, 3);
    const img = decodeImage(pngBytes(5, 4, 3, rgb), 'a.png');
    expect([img.format, img.width, img.height, img.channels]).toEqual(['png', 5, 4, 3]);
    expect(Array.from(img.data)).toEqual(Array.from(rgb));
  });

  it('decodes a grey PNG to one channel', () => {
    const grey = Array.from({ length: 12 }, (_, i) => i * 20);
    const img = decodeImage(pngBytes(4, 3, 1, grey), 'g.png');
    expect(img.channels).toBe(1);
    expect(Array.from(img.data)).toEqual(grey);
  });

  it('drops the alpha channel of an RGBA PNG', () => {
    const rgba = [10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255];
    const img = decodeImage(pngBytes(3, 1, 4, rgba), 'a.png');
    expect(img.channels).toBe(3);
    expect(Array.from(img.data)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90]);
  });

  it('scales a 16-bit PNG to 8 bits', () => {
    // One scanline: filter byte 0, then 65535 and 0 as big-endian 16-bit values.
    const bytes = pngRaw(2, 1, 16, 0, new Uint8Array([0, 0xff, 0xff, 0, 0]));
    const header = readImageHeader(bytes, 'deep.png');
    expect(header).toEqual({ format: 'png', width: 2, height: 1, channels: 1 });
    const img = decodeImage(bytes, 'deep.png');
    expect(Array.from(img.data)).toEqual([255, 0]);
  });
});

describe('decodeImage: PNG palette', () => {
  it('expands a 2-bit palette PNG to its colours', () => {
    // 4 pixels, indices 0 1 2 3 packed in one byte (2 bits each) after the filter byte.
    const palette = new Uint8Array([0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30]);
    const img = decodeImage(pngRaw(4, 1, 2, 3, new Uint8Array([0, 0b00011011]), palette), 'pal.png');
    expect(img.channels).toBe(3);
    expect(Array.from(img.data)).toEqual([0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30]);
  });
});

describe('decodeImage: JPEG', () => {
  it('decodes an RGB JPEG close to the encoded pixels', () => {
    const rgb = gradientRgb(16, 16, 1);
    const img = decodeImage(jpegBytes(16, 16, rgb, 100), 'a.jpg');
    expect([img.format, img.width, img.height, img.channels]).toEqual(['jpeg', 16, 16, 3]);
    let maxDiff = 0;
    for (let i = 0; i < rgb.length; i++) maxDiff = Math.max(maxDiff, Math.abs(img.data[i] - rgb[i]));
    expect(maxDiff).toBeLessThan(12);
  });

  it('reads width and height from the frame header', () => {
    expect(readImageHeader(jpegBytes(20, 10, gradientRgb(20, 10, 0)), 'x.jpg')).toEqual({ format: 'jpeg', width: 20, height: 10, channels: 3 });
  });
});

describe('decodeImage: hostile and broken files', () => {
  it('refuses a 50000×50000 PNG bomb by its header, before decoding', () => {
    const bomb = pngBomb(50_000);
    expect(bomb.length).toBeLessThan(2000);
    expect(readImageHeader(bomb, 'bomb.png')).toMatchObject({ width: 50_000, height: 50_000 });
    const before = process.memoryUsage().arrayBuffers;
    expectDatasetError(() => decodeImage(bomb, 'bomb.png'), 'bomb.png', /declares 50000×50000 pixels, over the limit.*refused before decoding/);
    // 2.5 GB would be needed to decode it; nothing near that was allocated.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 2 ** 20);
  });

  it('refuses a JPEG declaring 60000×60000 by its header', () => {
    expectDatasetError(() => decodeImage(jpegDeclaring(60_000, 60_000), 'bomb.jpg'), 'bomb.jpg', /declares 60000×60000 pixels, over the limit/);
  });

  it('applies the per-side and file-size limits given', () => {
    const bytes = pngBytes(40, 10, 3, gradientRgb(40, 10, 0));
    expectDatasetError(() => decodeImage(bytes, 'wide.png', { maxSide: 32 }), 'wide.png', /declares 40×10 pixels/);
    expectDatasetError(() => decodeImage(bytes, 'big.png', { maxFileBytes: 50 }), 'big.png', /file of \d+ bytes is over the limit of 50/);
    expect(decodeImage(bytes, 'ok.png', { maxSide: 40, maxPixels: 400 }).width).toBe(40);
  });

  it.each([
    ['png', 0.5],
    ['png', 0.9],
    ['jpeg', 0.5],
    ['jpeg', 0.97],
  ] as const)('refuses a %s truncated to %s of its length, naming the file', (format, keep) => {
    const rgb = gradientRgb(32, 32, 7);
    const full = format === 'png' ? pngBytes(32, 32, 3, rgb) : jpegBytes(32, 32, rgb);
    const cut = full.slice(0, Math.floor(full.length * keep));
    expectDatasetError(() => decodeImage(cut, `/data/cut.${format}`), `/data/cut.${format}`, /truncated|corrupt/);
  });

  it('refuses a PNG that lost only its IEND chunk', () => {
    const full = pngBytes(8, 8, 3, gradientRgb(8, 8, 1));
    expectDatasetError(() => decodeImage(full.slice(0, full.length - 12), 'noend.png'), 'noend.png', /PNG/);
  });

  it('refuses empty files and files of another format', () => {
    expectDatasetError(() => decodeImage(new Uint8Array(0), 'empty.png'), 'empty.png', /empty file/);
    expectDatasetError(() => decodeImage(new TextEncoder().encode('GIF89a....'), 'x.gif'), 'x.gif', /not a PNG or JPEG/);
  });

  it('turns random corruption of valid files into DatasetErrors or valid images, never anything else', () => {
    const rng = createRng(99);
    const sources = [pngBytes(12, 12, 3, gradientRgb(12, 12, 2)), jpegBytes(12, 12, gradientRgb(12, 12, 2)), pngBytes(12, 12, 1, gradientRgb(12, 4, 0))];
    let errors = 0;
    for (let t = 0; t < 300; t++) {
      const bytes = sources[t % sources.length].slice();
      const flips = 1 + rng.int(8);
      for (let f = 0; f < flips; f++) bytes[rng.int(bytes.length)] = rng.int(256);
      try {
        const img = decodeImage(bytes, `fuzz-${t}`);
        expect(img.data.length).toBe(img.width * img.height * img.channels);
      } catch (err) {
        expect(err, String(err)).toBeInstanceOf(DatasetError);
        expect((err as DatasetError).source).toBe(`fuzz-${t}`);
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(50);
  });
});

describe('toPlanes', () => {
  it('repeats grey into RGB planes and makes grey from RGB by ITU-R 601-2 luma', () => {
    const grey = { format: 'png' as const, width: 2, height: 1, channels: 1 as const, data: new Uint8Array([7, 9]) };
    expect(Array.from(toPlanes(grey, 3))).toEqual([7, 9, 7, 9, 7, 9]);
    const rgb = { format: 'png' as const, width: 3, height: 1, channels: 3 as const, data: new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255]) };
    // PIL's convert('L') gives 76, 150, 29 for pure red, green, blue.
    expect(Array.from(toPlanes(rgb, 1))).toEqual([76, 150, 29]);
    expect(Array.from(toPlanes(rgb, 3))).toEqual([255, 0, 0, 0, 255, 0, 0, 0, 255]);
  });
});

describe('resizePlanes', () => {
  it('averages 2×2 blocks when halving', () => {
    const src = new Uint8Array([0, 10, 20, 30, 2, 12, 22, 32, 100, 100, 0, 0, 100, 100, 0, 0]);
    expect(Array.from(resizePlanes(src, 1, 4, 4, 2, 2))).toEqual([6, 26, 100, 0]);
  });

  it('weights partly covered pixels by their coverage when shrinking by 1.5', () => {
    // 3 → 2: output 0 covers [0, 1.5): (0·1 + 30·0.5) / 1.5 = 10; output 1 covers [1.5, 3): (30·0.5 + 60) / 1.5 = 50.
    expect(Array.from(resizePlanes(new Uint8Array([0, 30, 60]), 1, 1, 3, 1, 2))).toEqual([10, 50]);
  });

  it('interpolates with half-pixel centres and clamped edges when growing', () => {
    // [0, 100] → 4 samples at source positions -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    expect(Array.from(resizePlanes(new Uint8Array([0, 100]), 1, 1, 2, 1, 4))).toEqual([0, 25, 75, 100]);
    expect(Array.from(resizePlanes(new Uint8Array([0, 100, 0, 100]), 1, 2, 2, 4, 1))).toEqual([50, 50, 50, 50]);
  });

  it('resizes each channel on its own and keeps a constant image constant', () => {
    const src = new Uint8Array(3 * 7 * 5);
    src.fill(10, 0, 35);
    src.fill(200, 35, 70);
    src.fill(255, 70);
    const out = resizePlanes(src, 3, 7, 5, 3, 11);
    expect(out.length).toBe(3 * 3 * 11);
    expect(new Set(out.subarray(0, 33))).toEqual(new Set([10]));
    expect(new Set(out.subarray(33, 66))).toEqual(new Set([200]));
    expect(new Set(out.subarray(66))).toEqual(new Set([255]));
  });

  it('returns a copy at the same size and rejects wrong lengths', () => {
    const src = new Uint8Array([1, 2, 3, 4]);
    const out = resizePlanes(src, 1, 2, 2, 2, 2);
    expect(out).not.toBe(src);
    expect(Array.from(out)).toEqual([1, 2, 3, 4]);
    expect(() => resizePlanes(src, 1, 3, 2, 2, 2)).toThrow(/needs 6 values, got 4/);
  });
});
