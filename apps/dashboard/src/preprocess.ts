// Turns a drawing or a photo of a digit into a 28×28 MNIST-style input, in the browser.
//
// MNIST's digits were made this way (LeCun et al.): the ink's bounding box is scaled,
// keeping its aspect ratio, to fit a 20×20 box with anti-aliasing, then placed in a 28×28
// field so that its centre of mass sits at the centre. Doing the same to a user's drawing
// is what makes a model trained on MNIST read it well.

/** RGBA pixels, as `CanvasRenderingContext2D.getImageData` returns them. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray | Uint8Array;
}

export interface DigitOptions {
  /** Side of the output field. Default 28. */
  size?: number;
  /** Side of the box the digit's bounding box is scaled into. Default 20. */
  box?: number;
  /** Ink level (0..1, after contrast stretch) above which a pixel belongs to the bounding box. Default 0.1. */
  threshold?: number;
}

export interface DigitResult {
  /** `size × size` ink in [0, 1], row-major, 1 = full ink (MNIST's white-on-black convention). */
  readonly pixels: Float32Array;
  readonly size: number;
  /** The ink's bounding box in the source image. */
  readonly bbox: { x: number; y: number; width: number; height: number };
  /** True when the source was dark ink on a light background and was inverted. */
  readonly inverted: boolean;
}

const LUMA_R = 0.299;
const LUMA_G = 0.587;
const LUMA_B = 0.114;

/**
 * Ink per pixel in [0, 1]: luminance composited over white, inverted when the border is light
 * (dark pen on paper), then stretched so the background is 0 and the strongest ink is 1.
 */
export function inkFromRgba(img: RgbaImage): { ink: Float32Array; inverted: boolean } {
  const { width: w, height: h, data } = img;
  if (!(w > 0 && h > 0) || data.length !== w * h * 4) {
    throw new Error(`preprocess: image of ${w}×${h} needs ${w * h * 4} RGBA bytes, got ${data.length}`);
  }
  const n = w * h;
  const lum = new Float32Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 4) {
    const a = data[p + 3] / 255;
    const l = (LUMA_R * data[p] + LUMA_G * data[p + 1] + LUMA_B * data[p + 2]) / 255;
    lum[i] = a * l + (1 - a); // transparent = white paper
  }
  // The border tells the background: mean luminance of the outermost pixels.
  let borderSum = 0;
  let borderCount = 0;
  for (let x = 0; x < w; x++) {
    borderSum += lum[x] + lum[(h - 1) * w + x];
    borderCount += 2;
  }
  for (let y = 1; y < h - 1; y++) {
    borderSum += lum[y * w] + lum[y * w + w - 1];
    borderCount += 2;
  }
  const background = borderSum / borderCount;
  const inverted = background > 0.5;
  const ink = new Float32Array(n);
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = inverted ? 1 - lum[i] : lum[i];
    ink[i] = v;
    if (v > hi) hi = v;
  }
  // Contrast stretch: the paper's own level (plus a margin for its grain) becomes 0.
  const lo = Math.min((inverted ? 1 - background : background) + 0.08, hi);
  const range = hi - lo;
  for (let i = 0; i < n; i++) ink[i] = range > 1e-6 ? Math.min(1, Math.max(0, (ink[i] - lo) / range)) : 0;
  return { ink, inverted };
}

/**
 * Area-averaging resize of a single-channel image (each output pixel is the mean of the input
 * area it covers, fractional pixels weighted): the anti-aliased downscale MNIST used.
 * Separable: rows first, then columns.
 */
export function resizeArea(src: Float32Array, sw: number, sh: number, dw: number, dh: number): Float32Array {
  if (src.length !== sw * sh) throw new Error(`resizeArea: source of ${sw}×${sh} needs ${sw * sh} values, got ${src.length}`);
  if (!(dw >= 1 && dh >= 1)) throw new Error(`resizeArea: target ${dw}×${dh} must be at least 1×1`);
  const tmp = new Float32Array(dw * sh);
  resample1d(src, tmp, sh, sw, dw, 1, sw, 1, dw); // along x, for each of the sh rows
  const out = new Float32Array(dw * dh);
  resample1d(tmp, out, dw, sh, dh, dw, 1, dw, 1); // along y, for each of the dw columns
  return out;
}

/**
 * Area resampling along one axis for `lines` lines: input line `l` has `n` samples at
 * `l * lineStride + i * step`, output has `m` samples at `l * outLineStride + j * outStep`.
 */
function resample1d(
  src: Float32Array,
  dst: Float32Array,
  lines: number,
  n: number,
  m: number,
  step: number,
  lineStride: number,
  outStep: number,
  outLineStride: number,
): void {
  const scale = n / m; // input samples per output sample
  for (let j = 0; j < m; j++) {
    const a = j * scale;
    const b = a + scale;
    const i0 = Math.floor(a);
    const i1 = Math.min(n, Math.ceil(b));
    for (let l = 0; l < lines; l++) {
      const base = l * lineStride;
      let sum = 0;
      for (let i = i0; i < i1; i++) {
        const cover = Math.min(b, i + 1) - Math.max(a, i); // overlap of [i, i+1) with [a, b)
        sum += cover * src[base + i * step];
      }
      dst[l * outLineStride + j * outStep] = sum / scale;
    }
  }
}

/**
 * MNIST-style normalisation of a digit image. Returns null when the image holds no ink.
 * Steps: ink extraction (see `inkFromRgba`), bounding box of pixels above `threshold`, area
 * resize of the box so its longer side is `box` pixels, placement in a `size × size` field
 * with the centre of mass at the centre (integer shift, clamped so no ink falls off).
 */
export function preprocessDigit(img: RgbaImage, opts: DigitOptions = {}): DigitResult | null {
  const { size = 28, box = 20, threshold = 0.1 } = opts;
  if (!(box >= 1 && box <= size)) throw new Error(`preprocess: box ${box} must lie in [1, size = ${size}]`);
  const { width: w, height: h } = img;
  const { ink, inverted } = inkFromRgba(img);

  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (ink[row + x] > threshold) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const crop = new Float32Array(bw * bh);
  for (let y = 0; y < bh; y++) crop.set(ink.subarray((y0 + y) * w + x0, (y0 + y) * w + x0 + bw), y * bw);

  // Longer side to `box`, aspect kept: a "1" stays thin.
  const k = box / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * k));
  const th = Math.max(1, Math.round(bh * k));
  const scaled = resizeArea(crop, bw, bh, tw, th);

  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const v = scaled[y * tw + x];
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  const cx = mass > 0 ? mx / mass : tw / 2;
  const cy = mass > 0 ? my / mass : th / 2;
  const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
  const ox = clamp(Math.round(size / 2 - cx), 0, size - tw);
  const oy = clamp(Math.round(size / 2 - cy), 0, size - th);

  const pixels = new Float32Array(size * size);
  for (let y = 0; y < th; y++) pixels.set(scaled.subarray(y * tw, y * tw + tw), (oy + y) * size + ox);
  return { pixels, size, bbox: { x: x0, y: y0, width: bw, height: bh }, inverted };
}

/** `(v - mean) / std` per pixel: the dataset normalisation the model was trained with. */
export function normalize(pixels: Float32Array, mean: number, std: number): Float32Array {
  if (!(std > 0)) throw new Error(`normalize: std must be > 0, got ${std}`);
  const out = new Float32Array(pixels.length);
  const inv = 1 / std;
  for (let i = 0; i < pixels.length; i++) out[i] = (pixels[i] - mean) * inv;
  return out;
}
