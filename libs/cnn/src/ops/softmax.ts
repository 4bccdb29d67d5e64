// softmax and logSoftmax along any dimension, max-shifted for numerical stability.

import { normDim } from '../assert.ts';
import { Tensor, numelOf, record, result, tracking } from '../tensor.ts';
import { allocF32 } from '../arena.ts';

/** Splits a shape around `dim` into (outer, len, inner) so element (o, k, i) is at (o·len + k)·inner + i. */
function around(x: Tensor, dim: number, op: string): [number, number, number] {
  const d = normDim(dim, x.shape.length, op);
  return [numelOf(x.shape.slice(0, d)), x.shape[d], numelOf(x.shape.slice(d + 1))];
}

/** Writes log-softmax of `src` along the middle axis into `dst`. */
export function logSoftmaxKernel(src: Float32Array, dst: Float32Array, outer: number, len: number, inner: number): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let max = -Infinity;
      for (let k = 0, e = base; k < len; k++, e += inner) if (src[e] > max) max = src[e];
      let s = 0;
      for (let k = 0, e = base; k < len; k++, e += inner) s += Math.exp(src[e] - max);
      const lse = max + Math.log(s);
      for (let k = 0, e = base; k < len; k++, e += inner) dst[e] = src[e] - lse;
    }
  }
}

/** e^x / Σ e^x along `dim`. */
export function softmax(x: Tensor, dim: number): Tensor {
  const [outer, len, inner] = around(x, dim, 'softmax');
  const y = allocF32(x.numel);
  logSoftmaxKernel(x.data, y, outer, len, inner);
  for (let i = 0; i < y.length; i++) y[i] = Math.exp(y[i]);
  const out = result(y, x.shape);
  if (tracking(x)) {
    // dx = y ⊙ (g − Σ g·y)
    record(out, [x], (g) => {
      const gx = x.gradSink();
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const base = o * len * inner + i;
          let dot = 0;
          for (let k = 0, e = base; k < len; k++, e += inner) dot += g[e] * y[e];
          for (let k = 0, e = base; k < len; k++, e += inner) gx[e] += y[e] * (g[e] - dot);
        }
      }
    });
  }
  return out;
}

/** x − log Σ e^x along `dim`. */
export function logSoftmax(x: Tensor, dim: number): Tensor {
  const [outer, len, inner] = around(x, dim, 'logSoftmax');
  const y = allocF32(x.numel);
  logSoftmaxKernel(x.data, y, outer, len, inner);
  const out = result(y, x.shape);
  if (tracking(x)) {
    // dx = g − softmax · Σ g
    record(out, [x], (g) => {
      const gx = x.gradSink();
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const base = o * len * inner + i;
          let s = 0;
          for (let k = 0, e = base; k < len; k++, e += inner) s += g[e];
          for (let k = 0, e = base; k < len; k++, e += inner) gx[e] += g[e] - Math.exp(y[e]) * s;
        }
      }
    });
  }
  return out;
}
