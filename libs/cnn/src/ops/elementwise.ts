// Element-wise ops: activations, arithmetic with NumPy broadcasting, scaling, dropout.

import { assert, assertRange, fmt } from '../assert.ts';
import type { Rng } from '../rng.ts';
import { Tensor, accumulate, record, result, tracking } from '../tensor.ts';
import { addWasm, leakyReluBackwardWasm, leakyReluWasm, reluBackwardWasm, reluWasm } from '../kernels/wasm/elementwise.ts';
import { allocF32, allocI32 } from '../arena.ts';

/** Applies `f` element-wise; backward multiplies by `df(x, y)` (y = f(x)). */
function unary(x: Tensor, f: (v: number) => number, df: (x: number, y: number) => number): Tensor {
  const src = x.data;
  const data = allocF32(src.length);
  for (let i = 0; i < src.length; i++) data[i] = f(src[i]);
  const out = result(data, x.shape);
  if (tracking(x)) {
    record(out, [x], (g) => {
      const gx = x.gradSink();
      for (let i = 0; i < g.length; i++) gx[i] += g[i] * df(src[i], data[i]);
    });
  }
  return out;
}

/**
 * x for x > 0, slope·x otherwise; slope 0 is ReLU (gradient 0 at exactly 0, like PyTorch).
 * Written out rather than through `unary` because it runs after every convolution.
 */
function rectify(x: Tensor, slope: number): Tensor {
  const src = x.data;
  const data = allocF32(src.length);
  if (!(slope === 0 ? reluWasm(src, data) : leakyReluWasm(src, data, slope))) {
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      data[i] = v > 0 ? v : slope === 0 ? 0 : v * slope;
    }
  }
  const out = result(data, x.shape);
  if (tracking(x)) {
    record(out, [x], (g) => {
      const gx = x.gradSink();
      if (slope === 0 ? reluBackwardWasm(src, g, gx) : leakyReluBackwardWasm(src, g, gx, slope)) return;
      for (let i = 0; i < g.length; i++) gx[i] += src[i] > 0 ? g[i] : g[i] * slope;
    });
  }
  return out;
}

/** max(0, x). */
export function relu(x: Tensor): Tensor {
  return rectify(x, 0);
}

/** x for x > 0, negativeSlope·x otherwise. */
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  return rectify(x, negativeSlope);
}

/** 1 / (1 + e^−x), computed without overflow for large |x|. */
export function sigmoid(x: Tensor): Tensor {
  return unary(x, sigmoidScalar, (_v, y) => y * (1 - y));
}

export function sigmoidScalar(v: number): number {
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

export function tanh(x: Tensor): Tensor {
  return unary(x, Math.tanh, (_v, y) => 1 - y * y);
}

/** x · s for a number s. */
export function scale(x: Tensor, s: number): Tensor {
  return unary(
    x,
    (v) => v * s,
    () => s,
  );
}

/** Index maps from every output element into a and b under NumPy broadcasting. */
interface Broadcast {
  shape: number[];
  ia: Int32Array;
  ib: Int32Array;
}

function broadcast(op: string, a: Tensor, b: Tensor): Broadcast {
  const nd = Math.max(a.shape.length, b.shape.length);
  const shape: number[] = [];
  for (let i = 0; i < nd; i++) {
    const da = a.shape[a.shape.length - nd + i] ?? 1;
    const db = b.shape[b.shape.length - nd + i] ?? 1;
    assert(da === db || da === 1 || db === 1, () => `${op}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} do not broadcast (dim ${i}: ${da} vs ${db})`);
    shape.push(da === 1 ? db : da);
  }
  const strides = (t: Tensor): number[] => {
    const s = new Array<number>(nd).fill(0);
    let acc = 1;
    for (let i = t.shape.length - 1; i >= 0; i--) {
      const dim = nd - t.shape.length + i;
      s[dim] = t.shape[i] === 1 ? 0 : acc;
      acc *= t.shape[i];
    }
    return s;
  };
  const sa = strides(a);
  const sb = strides(b);
  let total = 1;
  for (const d of shape) total *= d;
  const ia = allocI32(total);
  const ib = allocI32(total);
  const idx = new Array<number>(nd).fill(0);
  let oa = 0;
  let ob = 0;
  // Odometer over the output shape, carrying the two input offsets along.
  for (let i = 0; i < total; i++) {
    ia[i] = oa;
    ib[i] = ob;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < shape[d]) break;
      oa -= sa[d] * shape[d];
      ob -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
  return { shape, ia, ib };
}

function sameShape(a: Tensor, b: Tensor): boolean {
  if (a.shape.length !== b.shape.length) return false;
  for (let i = 0; i < a.shape.length; i++) if (a.shape[i] !== b.shape[i]) return false;
  return true;
}

type BinaryKind = 0 | 1 | 2; // add, sub, mul

function binary(op: string, kind: BinaryKind, a: Tensor, b: Tensor): Tensor {
  const A = a.data;
  const B = b.data;
  if (sameShape(a, b)) {
    // Fast path: no index maps.
    const data = allocF32(A.length);
    if (kind === 0) {
      if (!addWasm(A, B, data)) for (let i = 0; i < A.length; i++) data[i] = A[i] + B[i];
    } else if (kind === 1) for (let i = 0; i < A.length; i++) data[i] = A[i] - B[i];
    else for (let i = 0; i < A.length; i++) data[i] = A[i] * B[i];
    const out = result(data, a.shape);
    if (tracking(a, b)) {
      record(out, [a, b], (g) => {
        if (a.requiresGrad) {
          const ga = a.gradSink();
          if (kind === 2) for (let i = 0; i < g.length; i++) ga[i] += g[i] * B[i];
          else accumulate(ga, g);
        }
        // For a sum, b's gradient is g itself: b takes the buffer (read above, nothing else uses it).
        if (b.requiresGrad && kind === 0) b.takeGrad(g);
        else if (b.requiresGrad) {
          const gb = b.gradSink();
          if (kind === 1) for (let i = 0; i < g.length; i++) gb[i] -= g[i];
          else for (let i = 0; i < g.length; i++) gb[i] += g[i] * A[i];
        }
      });
    }
    return out;
  }
  const { shape, ia, ib } = broadcast(op, a, b);
  const data = allocF32(ia.length);
  if (kind === 0) for (let i = 0; i < data.length; i++) data[i] = A[ia[i]] + B[ib[i]];
  else if (kind === 1) for (let i = 0; i < data.length; i++) data[i] = A[ia[i]] - B[ib[i]];
  else for (let i = 0; i < data.length; i++) data[i] = A[ia[i]] * B[ib[i]];
  const out = result(data, shape);
  if (tracking(a, b)) {
    // A broadcast input's gradient sums over the positions it was repeated to.
    record(out, [a, b], (g) => {
      if (a.requiresGrad) {
        const ga = a.gradSink();
        if (kind === 2) for (let i = 0; i < g.length; i++) ga[ia[i]] += g[i] * B[ib[i]];
        else for (let i = 0; i < g.length; i++) ga[ia[i]] += g[i];
      }
      if (b.requiresGrad) {
        const gb = b.gradSink();
        if (kind === 0) for (let i = 0; i < g.length; i++) gb[ib[i]] += g[i];
        else if (kind === 1) for (let i = 0; i < g.length; i++) gb[ib[i]] -= g[i];
        else for (let i = 0; i < g.length; i++) gb[ib[i]] += g[i] * A[ia[i]];
      }
    });
  }
  return out;
}

/** a + b with NumPy/PyTorch broadcasting (e.g. [N, C, H, W] + [1, C, 1, 1]). */
export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', 0, a, b);
}

/** a − b with broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', 1, a, b);
}

/** a · b element-wise with broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary('mul', 2, a, b);
}

export interface DropoutOptions {
  /** Probability of zeroing an element. Default 0.5. */
  p?: number;
  /** Identity when false. Default true (PyTorch F.dropout). */
  training?: boolean;
  /** Source of the mask; required when training with p > 0. One `rng.next()` per element, in order. */
  rng?: Rng;
}

/** Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1 − p). */
export function dropout(x: Tensor, opts: DropoutOptions = {}): Tensor {
  const p = opts.p ?? 0.5;
  const training = opts.training ?? true;
  assertRange(p >= 0 && p <= 1, () => `dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  const rng = opts.rng;
  assertRange(rng !== undefined, () => 'dropout: an rng is required when training with p > 0');
  const src = x.data;
  const mask = allocF32(src.length);
  const keep = p === 1 ? 0 : 1 / (1 - p);
  for (let i = 0; i < src.length; i++) mask[i] = rng.next() < p ? 0 : keep;
  const data = allocF32(src.length);
  for (let i = 0; i < src.length; i++) data[i] = src[i] * mask[i];
  const out = result(data, x.shape);
  if (tracking(x)) {
    record(out, [x], (g) => {
      const gx = x.gradSink();
      for (let i = 0; i < g.length; i++) gx[i] += g[i] * mask[i];
    });
  }
  return out;
}
