// Rendering of the generated vision sets: MNIST digits scaled and placed on a black canvas.
//
// A digit's 28×28 patch is resized bilinearly to s×s (pixel centres aligned, like PyTorch's
// interpolate with align_corners = False) and pasted at an integer offset; overlapping digits are
// composited with max(), since ink on black adds up that way. A digit's box is the tight box of its
// OWN ink — every pixel of its resized patch that is not 0 — whether or not another digit covers
// part of it. The class map gives each pixel the class of the digit brightest there when that
// intensity is above a threshold, else background.

/** A pool of 28×28 uint8 digits with their labels (MNIST). */
export interface DigitSource {
  count: number;
  /** `count × 28 × 28` pixels. */
  images: Uint8Array;
  /** `count` labels in [0, 10). */
  labels: Uint8Array;
}

export const DIGIT_SIDE = 28;

/** A digit as placed on a canvas: its class and its ink box in pixels, [x0, x1) × [y0, y1). */
export interface PlacedDigit {
  classId: number;
  /** Index of the digit in its source. */
  sourceIndex: number;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** A resized digit patch and the ink box within it. */
export interface DigitPatch {
  side: number;
  pixels: Uint8Array;
  /** Ink box within the patch, [x0, x1) × [y0, y1); empty (x1 = 0) for a patch without ink. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Source coordinate and blend weight for each destination index along one axis. */
function axisTaps(srcSide: number, dstSide: number): { lo: Int32Array; hi: Int32Array; frac: Float32Array } {
  const lo = new Int32Array(dstSide);
  const hi = new Int32Array(dstSide);
  const frac = new Float32Array(dstSide);
  const ratio = srcSide / dstSide;
  for (let d = 0; d < dstSide; d++) {
    const s = Math.min(srcSide - 1, Math.max(0, (d + 0.5) * ratio - 0.5));
    lo[d] = Math.floor(s);
    hi[d] = Math.min(srcSide - 1, lo[d] + 1);
    frac[d] = s - lo[d];
  }
  return { lo, hi, frac };
}

/** Digit `index` of `source` resized to `side`×`side`, with its ink box. */
export function resizeDigit(source: DigitSource, index: number, side: number): DigitPatch {
  const src = source.images.subarray(index * DIGIT_SIDE * DIGIT_SIDE, (index + 1) * DIGIT_SIDE * DIGIT_SIDE);
  const { lo, hi, frac } = axisTaps(DIGIT_SIDE, side);
  const pixels = new Uint8Array(side * side);
  let x0 = side;
  let y0 = side;
  let x1 = 0;
  let y1 = 0;
  for (let y = 0; y < side; y++) {
    const top = lo[y] * DIGIT_SIDE;
    const bottom = hi[y] * DIGIT_SIDE;
    const fy = frac[y];
    for (let x = 0; x < side; x++) {
      const fx = frac[x];
      const a = src[top + lo[x]] + (src[top + hi[x]] - src[top + lo[x]]) * fx;
      const b = src[bottom + lo[x]] + (src[bottom + hi[x]] - src[bottom + lo[x]]) * fx;
      const v = Math.round(a + (b - a) * fy);
      pixels[y * side + x] = v;
      if (v > 0) {
        if (x < x0) x0 = x;
        if (x >= x1) x1 = x + 1;
        if (y < y0) y0 = y;
        if (y >= y1) y1 = y + 1;
      }
    }
  }
  return x1 === 0 ? { side, pixels, x0: 0, y0: 0, x1: 0, y1: 0 } : { side, pixels, x0, y0, x1, y1 };
}

/**
 * Pastes `patch` at (left, top) onto a `canvasSide`² canvas by max(), and, when `mask` is given,
 * claims for class `1 + classId` every pixel where this digit is now the brightest one and brighter
 * than `maskThreshold` (a pixel where it is brightest but not above the threshold is background).
 */
export function pasteDigit(canvas: Uint8Array, mask: Uint8Array | null, canvasSide: number, patch: DigitPatch, left: number, top: number, classId: number, maskThreshold: number): void {
  const { side, pixels } = patch;
  for (let y = 0; y < side; y++) {
    const row = (top + y) * canvasSide + left;
    for (let x = 0; x < side; x++) {
      const v = pixels[y * side + x];
      const p = row + x;
      if (v === 0 || v < canvas[p]) continue;
      canvas[p] = v;
      if (mask !== null) mask[p] = v > maskThreshold ? 1 + classId : 0;
    }
  }
}
