// Reductions: sum and mean over everything or over one dimension.

import { normDim } from '../assert.ts';
import { Tensor, numelOf, record, result, tracking } from '../tensor.ts';
import { allocF32 } from '../arena.ts';

function reduce(op: string, x: Tensor, dim: number | undefined, keepdim: boolean, isMean: boolean): Tensor {
  let outer = 1;
  let len = x.numel;
  let inner = 1;
  let shape: number[] = [];
  if (dim !== undefined) {
    const d = normDim(dim, x.shape.length, op);
    outer = numelOf(x.shape.slice(0, d));
    len = x.shape[d];
    inner = numelOf(x.shape.slice(d + 1));
    shape = x.shape.slice();
    if (keepdim) shape[d] = 1;
    else shape.splice(d, 1);
  } else if (keepdim) {
    shape = x.shape.map(() => 1);
  }
  const f = isMean ? 1 / len : 1;
  const src = x.data;
  const data = allocF32(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let s = 0;
      for (let k = 0, e = o * len * inner + i; k < len; k++, e += inner) s += src[e];
      data[o * inner + i] = s * f;
    }
  }
  const out = result(data, shape);
  if (tracking(x)) {
    record(out, [x], (g) => {
      const gx = x.gradSink();
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const v = g[o * inner + i] * f;
          for (let k = 0, e = o * len * inner + i; k < len; k++, e += inner) gx[e] += v;
        }
      }
    });
  }
  return out;
}

/** Sum of all elements (shape []), or over `dim` (removed unless keepdim). */
export function sum(x: Tensor, dim?: number, keepdim = false): Tensor {
  return reduce('sum', x, dim, keepdim, false);
}

/** Mean of all elements (shape []), or over `dim` (removed unless keepdim). */
export function mean(x: Tensor, dim?: number, keepdim = false): Tensor {
  return reduce('mean', x, dim, keepdim, true);
}
