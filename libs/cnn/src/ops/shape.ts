// Shape ops: reshape/flatten (sharing storage, like PyTorch views) and concat.

import { assert, fmt, normDim } from '../assert.ts';
import { Tensor, accumulate, numelOf, record, result, tracking } from '../tensor.ts';
import { allocF32 } from '../arena.ts';

/** Same data, new shape; one dimension may be −1 (inferred). Shares storage with `x`. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const dims = shape.slice();
  const infer = dims.indexOf(-1);
  assert(dims.lastIndexOf(-1) === infer, () => `reshape: only one dimension can be -1, got ${fmt(shape)}`);
  if (infer >= 0) {
    dims[infer] = 1;
    const rest = numelOf(dims);
    assert(rest > 0 && x.numel % rest === 0, () => `reshape: cannot reshape ${fmt(x.shape)} (${x.numel} values) to ${fmt(shape)}`);
    dims[infer] = x.numel / rest;
  }
  for (const d of dims) assert(Number.isInteger(d) && d >= 0, () => `reshape: invalid shape ${fmt(shape)}`);
  assert(numelOf(dims) === x.numel, () => `reshape: cannot reshape ${fmt(x.shape)} (${x.numel} values) to ${fmt(shape)}`);
  const out = result(x.data, dims);
  if (tracking(x)) {
    // The gradient passes through unchanged: x takes the buffer (no copy when it has none yet).
    record(out, [x], (g) => x.takeGrad(g));
  }
  return out;
}

/** Merges dims startDim..endDim into one (PyTorch flatten; default keeps the batch dim). */
export function flatten(x: Tensor, startDim = 1, endDim = -1): Tensor {
  if (x.shape.length === 0) return reshape(x, [1]);
  const s = normDim(startDim, x.shape.length, 'flatten');
  const e = normDim(endDim, x.shape.length, 'flatten');
  assert(s <= e, () => `flatten: startDim ${startDim} comes after endDim ${endDim} for shape ${fmt(x.shape)}`);
  const shape = [...x.shape.slice(0, s), numelOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

/**
 * Joins tensors along `dim`; all other dimensions must match. NOTE the default dim = 1 (the
 * channel axis, what DenseNet/U-Net/Inception need) where torch.cat defaults to 0.
 */
export function concat(tensors: readonly Tensor[], dim = 1): Tensor {
  assert(tensors.length > 0, () => 'concat: needs at least one tensor');
  const first = tensors[0];
  const nd = first.shape.length;
  const d = normDim(dim, nd, 'concat');
  let total = 0;
  for (const [i, t] of tensors.entries()) {
    const ok = t.shape.length === nd && t.shape.every((v, j) => j === d || v === first.shape[j]);
    assert(ok, () => `concat: tensor ${i} has shape ${fmt(t.shape)}, tensor 0 has ${fmt(first.shape)}; all dims but ${d} must match`);
    total += t.shape[d];
  }
  const outer = numelOf(first.shape.slice(0, d));
  const inner = numelOf(first.shape.slice(d + 1));
  const shape = first.shape.slice();
  shape[d] = total;
  const data = allocF32(outer * total * inner);
  const rowLen = total * inner;
  // Each input is a block of `t.shape[d]·inner` values per outer index, placed at its offset.
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    const len = t.shape[d] * inner;
    for (let o = 0; o < outer; o++) data.set(t.data.subarray(o * len, (o + 1) * len), o * rowLen + offset);
    offset += len;
  }
  const out = result(data, shape);
  if (tracking(...tensors)) {
    record(out, tensors.slice(), (g) => {
      for (const [i, t] of tensors.entries()) {
        if (!t.requiresGrad) continue;
        const gt = t.gradSink();
        const len = t.shape[d] * inner;
        for (let o = 0; o < outer; o++) {
          const src = o * rowLen + offsets[i];
          const dst = o * len;
          accumulate(gt.subarray(dst, dst + len), g.subarray(src, src + len));
        }
      }
    });
  }
  return out;
}
