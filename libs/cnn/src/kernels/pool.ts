// Pooling and nearest-neighbour upsampling kernels on flat NCHW Float32Arrays.

import { maxPool2dBackwardWasm, maxPool2dForwardWasm } from './wasm/elementwise.ts';

export interface Pool2dDims {
  /** Number of (sample, channel) planes: N·C. */
  planes: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  outH: number;
  outW: number;
}

/**
 * Max pooling (`sign` = 1) or min pooling (`sign` = −1, i.e. −maxPool(−x)). Padding acts as
 * ∓Infinity, so only real elements compete. `argmax[o]` receives the flat input index of the
 * FIRST extreme element in scan order (ties go to it, like PyTorch); NaN wins and propagates.
 */
export function maxPool2dForward(x: Float32Array, out: Float32Array, argmax: Int32Array | null, d: Pool2dDims, sign: 1 | -1): void {
  if (maxPool2dForwardWasm(x, out, argmax, d, sign)) return;
  const { planes, h, w, kh, kw, strideH, strideW, padH, padW, outH, outW } = d;
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const base = pl * h * w;
    for (let oy = 0; oy < outH; oy++) {
      const y0 = Math.max(0, oy * strideH - padH);
      const y1 = Math.min(h, oy * strideH - padH + kh);
      for (let ox = 0; ox < outW; ox++, o++) {
        const x0 = Math.max(0, ox * strideW - padW);
        const x1 = Math.min(w, ox * strideW - padW + kw);
        let best = -Infinity;
        let bestIdx = base + y0 * w + x0;
        for (let y = y0; y < y1; y++) {
          const row = base + y * w;
          for (let xx = x0; xx < x1; xx++) {
            const v = sign * x[row + xx];
            // `v !== v` is NaN: it wins so NaN propagates like PyTorch.
            if (v > best || v !== v) {
              best = v;
              bestIdx = row + xx;
              if (v !== v) break;
            }
          }
          if (best !== best) break;
        }
        out[o] = sign * best;
        if (argmax !== null) argmax[o] = bestIdx;
      }
    }
  }
}

/** gradX[argmax[o]] += gradOut[o]. */
export function maxPool2dBackward(gradOut: Float32Array, argmax: Int32Array, gradX: Float32Array): void {
  if (maxPool2dBackwardWasm(gradOut, argmax, gradX)) return;
  for (let o = 0; o < gradOut.length; o++) gradX[argmax[o]] += gradOut[o];
}

/** Average pooling counting padded zeros (PyTorch count_include_pad=True): divisor kh·kw. */
export function avgPool2dForward(x: Float32Array, out: Float32Array, d: Pool2dDims): void {
  const { planes, h, w, kh, kw, strideH, strideW, padH, padW, outH, outW } = d;
  const inv = 1 / (kh * kw);
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const base = pl * h * w;
    for (let oy = 0; oy < outH; oy++) {
      const y0 = Math.max(0, oy * strideH - padH);
      const y1 = Math.min(h, oy * strideH - padH + kh);
      for (let ox = 0; ox < outW; ox++, o++) {
        const x0 = Math.max(0, ox * strideW - padW);
        const x1 = Math.min(w, ox * strideW - padW + kw);
        let s = 0;
        for (let y = y0; y < y1; y++) {
          const row = base + y * w;
          for (let xx = x0; xx < x1; xx++) s += x[row + xx];
        }
        out[o] = s * inv;
      }
    }
  }
}

/** gradX += each output gradient spread evenly (1/(kh·kw)) over its window. */
export function avgPool2dBackward(gradOut: Float32Array, gradX: Float32Array, d: Pool2dDims): void {
  const { planes, h, w, kh, kw, strideH, strideW, padH, padW, outH, outW } = d;
  const inv = 1 / (kh * kw);
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const base = pl * h * w;
    for (let oy = 0; oy < outH; oy++) {
      const y0 = Math.max(0, oy * strideH - padH);
      const y1 = Math.min(h, oy * strideH - padH + kh);
      for (let ox = 0; ox < outW; ox++, o++) {
        const x0 = Math.max(0, ox * strideW - padW);
        const x1 = Math.min(w, ox * strideW - padW + kw);
        const g = gradOut[o] * inv;
        for (let y = y0; y < y1; y++) {
          const row = base + y * w;
          for (let xx = x0; xx < x1; xx++) gradX[row + xx] += g;
        }
      }
    }
  }
}

/** out[pl, y, x] = x[pl, ⌊y/sH⌋, ⌊x/sW⌋] for integer scale factors. */
export function upsampleNearest2dForward(x: Float32Array, out: Float32Array, planes: number, h: number, w: number, sH: number, sW: number): void {
  const outW = w * sW;
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    for (let y = 0; y < h; y++) {
      const row = (pl * h + y) * w;
      const start = o;
      for (let xx = 0; xx < w; xx++) {
        const v = x[row + xx];
        for (let r = 0; r < sW; r++) out[o++] = v;
      }
      // The other sH − 1 output rows repeat the first.
      for (let r = 1; r < sH; r++, o += outW) out.copyWithin(o, start, start + outW);
    }
  }
}

/** gradX += the sum of gradOut over each input pixel's sH×sW block. */
export function upsampleNearest2dBackward(gradOut: Float32Array, gradX: Float32Array, planes: number, h: number, w: number, sH: number, sW: number): void {
  const outW = w * sW;
  for (let pl = 0; pl < planes; pl++) {
    for (let y = 0; y < h; y++) {
      const row = (pl * h + y) * w;
      const oRow = (pl * h + y) * sH * outW;
      for (let xx = 0; xx < w; xx++) {
        let s = 0;
        for (let r = 0; r < sH; r++) {
          const o = oRow + r * outW + xx * sW;
          for (let q = 0; q < sW; q++) s += gradOut[o + q];
        }
        gradX[row + xx] += s;
      }
    }
  }
}
