// narrow: a contiguous slice along one dimension (PyTorch Tensor.narrow), differentiable.
//
// The task losses split a head's output into its parts (YOLO: objectness | box | classes along the
// channel axis; localizer: class logits | box along the feature axis) and apply a different loss to
// each. Slicing is a primitive like concat, so it carries its own backward; every loss built on it
// gets its gradient from autograd.

import { assert, fmt, normDim } from '../assert.ts';
import { Tensor, numelOf, record, result, tracking } from '../tensor.ts';
import { allocF32 } from '../arena.ts';

/** Elements `start .. start + length - 1` of `x` along `dim` (negative dims count from the end); a copy. */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normDim(dim, x.shape.length, 'narrow');
  const size = x.shape[d];
  assert(
    Number.isInteger(start) && Number.isInteger(length) && start >= 0 && length >= 1 && start + length <= size,
    () => `narrow: [${start}, ${start + length}) is not a non-empty range within dim ${d} of size ${size} (shape ${fmt(x.shape)})`,
  );
  const outer = numelOf(x.shape.slice(0, d));
  const inner = numelOf(x.shape.slice(d + 1));
  const srcRow = size * inner; // values per outer index in x
  const dstRow = length * inner; // ... in the result
  const offset = start * inner;
  const src = x.data;
  const data = allocF32(outer * dstRow);
  for (let o = 0; o < outer; o++) data.set(src.subarray(o * srcRow + offset, o * srcRow + offset + dstRow), o * dstRow);
  const shape = x.shape.slice();
  shape[d] = length;
  const out = result(data, shape);
  if (tracking(x)) {
    record(out, [x], (g) => {
      const gx = x.gradSink();
      for (let o = 0; o < outer; o++) {
        const s = o * srcRow + offset;
        const t = o * dstRow;
        for (let e = 0; e < dstRow; e++) gx[s + e] += g[t + e];
      }
    });
  }
  return out;
}
