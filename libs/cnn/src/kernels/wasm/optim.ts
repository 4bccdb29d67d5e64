// Optimizer updates on the WebAssembly SIMD kernels: the fast paths behind the SGD-momentum and
// Adam loops of optim/optimizers.ts. Same float64 arithmetic, same order, same float32 roundings as
// those loops, so the bytes are identical whichever runs; V8 runs the scalar loops (float32 →
// float64 → float32 per element) at several nanoseconds per element, the f64x2 loops at a
// fraction of that even with the copies in and out. Arrays go through the kernels' memory in
// chunks that stay in cache. Each returns false (nothing written) when the kernels are unavailable.

import { beginLayout, region, reserve, wasmKernels } from './runtime.ts';

/** Floats per chunk: four arrays of it stay in L2. */
const CHUNK = 16384;

/** buf = f32(momentum·buf + g); p = f32(p − lr·buf), element-wise. */
export function sgdMomentumWasm(p: Float32Array, grad: Float32Array, buf: Float32Array, lr: number, momentum: number): boolean {
  const kern = wasmKernels();
  if (kern === null) return false;
  const size = Math.min(CHUNK, p.length);
  beginLayout();
  const pAt = region(size, 4);
  const gAt = region(size, 4);
  const bAt = region(size, 4);
  if (!reserve(kern)) return false;
  const f = kern.f32;
  for (let at = 0; at < p.length; at += CHUNK) {
    const n = Math.min(CHUNK, p.length - at);
    f.set(p.subarray(at, at + n), pAt >> 2);
    f.set(grad.subarray(at, at + n), gAt >> 2);
    f.set(buf.subarray(at, at + n), bAt >> 2);
    kern.fn.sgd_momentum(pAt, gAt, bAt, n, lr, momentum);
    p.set(f.subarray(pAt >> 2, (pAt >> 2) + n), at);
    buf.set(f.subarray(bAt >> 2, (bAt >> 2) + n), at);
  }
  return true;
}

/** The constants of one Adam / AdamW step (see optim/optimizers.ts). */
export interface AdamStep {
  decay: number;
  l2: number;
  beta1: number;
  beta2: number;
  stepSize: number;
  bias2Sqrt: number;
  eps: number;
}

/** One Adam / AdamW step on p, with its first and second moments m and v. */
export function adamWasm(p: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, c: AdamStep): boolean {
  const kern = wasmKernels();
  if (kern === null) return false;
  const size = Math.min(CHUNK, p.length);
  beginLayout();
  const pAt = region(size, 4);
  const gAt = region(size, 4);
  const mAt = region(size, 4);
  const vAt = region(size, 4);
  if (!reserve(kern)) return false;
  const f = kern.f32;
  for (let at = 0; at < p.length; at += CHUNK) {
    const n = Math.min(CHUNK, p.length - at);
    f.set(p.subarray(at, at + n), pAt >> 2);
    f.set(grad.subarray(at, at + n), gAt >> 2);
    f.set(m.subarray(at, at + n), mAt >> 2);
    f.set(v.subarray(at, at + n), vAt >> 2);
    kern.fn.adam(pAt, gAt, mAt, vAt, n, c.decay, c.l2, c.beta1, 1 - c.beta1, c.beta2, 1 - c.beta2, c.stepSize, c.bias2Sqrt, c.eps);
    p.set(f.subarray(pAt >> 2, (pAt >> 2) + n), at);
    m.set(f.subarray(mAt >> 2, (mAt >> 2) + n), at);
    v.set(f.subarray(vAt >> 2, (vAt >> 2) + n), at);
  }
  return true;
}
