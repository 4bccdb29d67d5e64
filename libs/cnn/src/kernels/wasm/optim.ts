// Optimizer updates on the WebAssembly SIMD kernels: the fast paths behind the SGD-momentum and
// Adam loops of optim/optimizers.ts. Same float64 arithmetic, same order, same float32 roundings as
// those loops, so the bytes are identical whichever runs; V8 runs the scalar loops (float32 →
// float64 → float32 per element) at several nanoseconds per element, the f64x2 loops at a
// fraction of that even with the copies in and out. Arrays go through the kernels' memory in
// chunks that stay in cache. Each returns false (nothing written) when the kernels are unavailable.

import { inChunks } from './runtime.ts';

/** buf = f32(momentum·buf + g); p = f32(p − lr·buf), element-wise. */
export function sgdMomentumWasm(p: Float32Array, grad: Float32Array, buf: Float32Array, lr: number, momentum: number): boolean {
  return inChunks([p, grad, buf], [true, false, true], (kern, [pAt, gAt, bAt], n) => kern.fn.sgd_momentum(pAt, gAt, bAt, n, lr, momentum));
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
  return inChunks([p, grad, m, v], [true, false, true, true], (kern, [pAt, gAt, mAt, vAt], n) =>
    kern.fn.adam(pAt, gAt, mAt, vAt, n, c.decay, c.l2, c.beta1, 1 - c.beta1, c.beta2, 1 - c.beta2, c.stepSize, c.bias2Sqrt, c.eps),
  );
}
