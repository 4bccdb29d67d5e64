// 2-D convolution kernels on flat NCHW Float32Arrays: im2col + blocked GEMM (the default path).
// The plain direct loops in conv-reference.ts compute the same thing and the tests compare the
// two. Every backward kernel ADDS into its output, so gradients from several consumers (and
// several backward passes) accumulate.

import { sgemm } from './gemm.ts';
import { SLOT_COL, SLOT_DCOL, scratch } from './scratch.ts';
import { conv2dBackwardInputWasm, conv2dBackwardWeightWasm, conv2dForwardWasm } from './wasm/conv.ts';
import { biasGradWasm } from './wasm/elementwise.ts';

/** Geometry of one convolution; the weight is [cOut, cIn/groups, kh, kw]. */
export interface Conv2dDims {
  n: number;
  cIn: number;
  h: number;
  w: number;
  cOut: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilH: number;
  dilW: number;
  groups: number;
  outH: number;
  outW: number;
}

/** PyTorch's output size: ⌊(in + 2·pad − dil·(k − 1) − 1) / stride⌋ + 1. */
export function convOutSize(size: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((size + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}

/** A 1×1, stride-1, unpadded conv reads its input directly as the column matrix. */
function isPointwise(d: Conv2dDims): boolean {
  return d.kh === 1 && d.kw === 1 && d.strideH === 1 && d.strideW === 1 && d.padH === 0 && d.padW === 0;
}

/**
 * Unfolds channels [c0, c0+cCount) of one sample (starting at x[xOff]) into
 * col[(c·kh + i)·kw + j][oy·outW + ox] = x[c][oy·sH − pH + i·dH][ox·sW − pW + j·dW] (0 outside).
 */
export function im2col(x: Float32Array, xOff: number, cCount: number, d: Conv2dDims, col: Float32Array): void {
  const { h, w, kh, kw, strideH, strideW, padH, padW, dilH, dilW, outH, outW } = d;
  const hw = h * w;
  let o = 0; // col is written strictly in order
  for (let c = 0; c < cCount; c++) {
    const xc = xOff + c * hw;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const off = j * dilW - padW;
        // Output columns [lo, hi) read input column ox·sW + off inside [0, w); the rest is padding.
        const lo = off >= 0 ? 0 : Math.min(outW, Math.ceil(-off / strideW));
        const hi = w - 1 - off < 0 ? 0 : Math.min(outW, Math.floor((w - 1 - off) / strideW) + 1);
        for (let oy = 0; oy < outH; oy++) {
          const iy = oy * strideH - padH + i * dilH;
          const rowEnd = o + outW;
          if (iy < 0 || iy >= h || hi <= lo) {
            while (o < rowEnd) col[o++] = 0;
            continue;
          }
          const xr = xc + iy * w + off;
          const padEnd = o + lo;
          while (o < padEnd) col[o++] = 0;
          if (strideW === 1) {
            for (let s = xr + lo, e = xr + hi; s < e; s++) col[o++] = x[s];
          } else {
            for (let s = xr + lo * strideW, e = xr + hi * strideW; s < e; s += strideW) col[o++] = x[s];
          }
          while (o < rowEnd) col[o++] = 0;
        }
      }
    }
  }
}

/** Adjoint of `im2col`: adds every column entry back onto the input position it was read from. */
export function col2im(col: Float32Array, cCount: number, d: Conv2dDims, x: Float32Array, xOff: number): void {
  const { h, w, kh, kw, strideH, strideW, padH, padW, dilH, dilW, outH, outW } = d;
  const hw = h * w;
  const p = outH * outW;
  let row = 0;
  for (let c = 0; c < cCount; c++) {
    const xc = xOff + c * hw;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, row++) {
        const off = j * dilW - padW;
        const lo = off >= 0 ? 0 : Math.min(outW, Math.ceil(-off / strideW));
        const hi = w - 1 - off < 0 ? 0 : Math.min(outW, Math.floor((w - 1 - off) / strideW) + 1);
        if (hi <= lo) continue;
        let o = row * p;
        for (let oy = 0; oy < outH; oy++, o += outW) {
          const iy = oy * strideH - padH + i * dilH;
          if (iy < 0 || iy >= h) continue;
          const xr = xc + iy * w + off;
          for (let ox = lo; ox < hi; ox++) x[xr + ox * strideW] += col[o + ox];
        }
      }
    }
  }
}

/**
 * The im2col matrix [k×p] of one sample's group: `col` filled by im2col, or — for a pointwise
 * convolution (`col` null) — the input itself, which already has that layout.
 */
function columnsOf(x: Float32Array, xOff: number, cInG: number, d: Conv2dDims, col: Float32Array | null, size: number): Float32Array {
  if (col === null) return x.subarray(xOff, xOff + size);
  im2col(x, xOff, cInG, d, col);
  return col;
}

/** out = conv2d(x, w) + b (or out += ... when `accumulate`). `b` may be null. */
export function conv2dForward(x: Float32Array, w: Float32Array, b: Float32Array | null, out: Float32Array, d: Conv2dDims, accumulate = false): void {
  if (conv2dForwardWasm(x, w, b, out, d, accumulate)) return;
  const cInG = d.cIn / d.groups;
  const cOutG = d.cOut / d.groups;
  const k = cInG * d.kh * d.kw;
  const p = d.outH * d.outW;
  const pointwise = isPointwise(d);
  const col = pointwise ? null : scratch(SLOT_COL, k * p);
  for (let n = 0; n < d.n; n++) {
    for (let g = 0; g < d.groups; g++) {
      const cols = columnsOf(x, (n * d.cIn + g * cInG) * d.h * d.w, cInG, d, col, k * p);
      const oOff = (n * d.cOut + g * cOutG) * p;
      sgemm(cOutG, p, k, w.subarray(g * cOutG * k), cols, out.subarray(oOff, oOff + cOutG * p), false, false, accumulate);
    }
  }
  if (b !== null) addBias(out, b, d.n, d.cOut, p);
}

/** out[n, c, :] += b[c] over `spatial` positions. */
export function addBias(out: Float32Array, b: Float32Array, n: number, c: number, spatial: number): void {
  let o = 0;
  for (let s = 0; s < n; s++) {
    for (let ch = 0; ch < c; ch++) {
      const v = b[ch];
      for (let e = o + spatial; o < e; o++) out[o] += v;
    }
  }
}

/** gradX += d(conv)/dx · gradOut. */
export function conv2dBackwardInput(gradOut: Float32Array, w: Float32Array, gradX: Float32Array, d: Conv2dDims): void {
  if (conv2dBackwardInputWasm(gradOut, w, gradX, d)) return;
  const cInG = d.cIn / d.groups;
  const cOutG = d.cOut / d.groups;
  const k = cInG * d.kh * d.kw;
  const p = d.outH * d.outW;
  const pointwise = isPointwise(d);
  const dcol = pointwise ? null : scratch(SLOT_DCOL, k * p);
  for (let n = 0; n < d.n; n++) {
    for (let g = 0; g < d.groups; g++) {
      const gOff = (n * d.cOut + g * cOutG) * p;
      const xOff = (n * d.cIn + g * cInG) * d.h * d.w;
      const wg = w.subarray(g * cOutG * k);
      const go = gradOut.subarray(gOff, gOff + cOutG * p);
      if (dcol === null) {
        // dX[k×p] += Wᵀ[k×cOutG] · dY[cOutG×p] straight into the input gradient.
        sgemm(k, p, cOutG, wg, go, gradX.subarray(xOff, xOff + k * p), true, false, true);
      } else {
        sgemm(k, p, cOutG, wg, go, dcol, true, false, false);
        col2im(dcol, cInG, d, gradX, xOff);
      }
    }
  }
}

/** gradW += d(conv)/dw · gradOut, summed over the batch in sample order. */
export function conv2dBackwardWeight(x: Float32Array, gradOut: Float32Array, gradW: Float32Array, d: Conv2dDims): void {
  if (conv2dBackwardWeightWasm(x, gradOut, gradW, d)) return;
  const cInG = d.cIn / d.groups;
  const cOutG = d.cOut / d.groups;
  const k = cInG * d.kh * d.kw;
  const p = d.outH * d.outW;
  const pointwise = isPointwise(d);
  const col = pointwise ? null : scratch(SLOT_COL, k * p);
  for (let n = 0; n < d.n; n++) {
    for (let g = 0; g < d.groups; g++) {
      const cols = columnsOf(x, (n * d.cIn + g * cInG) * d.h * d.w, cInG, d, col, k * p);
      const gOff = (n * d.cOut + g * cOutG) * p;
      // dW[cOutG×k] += dY[cOutG×p] · colsᵀ[p×k]
      sgemm(cOutG, k, p, gradOut.subarray(gOff, gOff + cOutG * p), cols, gradW.subarray(g * cOutG * k, (g + 1) * cOutG * k), false, true, true);
    }
  }
}

/** gradB[c] += Σ over batch and positions of gradOut[n, c, :]. */
export function conv2dBackwardBias(gradOut: Float32Array, gradB: Float32Array, n: number, c: number, spatial: number): void {
  if (biasGradWasm(gradOut, gradB, n, c, spatial)) return;
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let b = 0; b < n; b++) {
      const o = (b * c + ch) * spatial;
      for (let e = o; e < o + spatial; e++) s += gradOut[e];
    }
    gradB[ch] += s;
  }
}
