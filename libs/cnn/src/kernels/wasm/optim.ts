// Optimizer updates on the WebAssembly SIMD kernels: the fast paths behind the SGD-momentum and
// Adam loops of optim/optimizers.ts. Same float64 arithmetic, same order, same float32 roundings as
// those loops, so the bytes are identical whichever runs; V8 runs the scalar loops (float32 →
// float64 → float32 per element) at several nanoseconds per element, the f64x2 loops at a
// fraction of that even with the copies in and out. Arrays go through the kernels' memory in
// chunks that stay in cache. Each returns false (nothing written) when the kernels are unavailable.

import { beginLayout, region, reserve, wasmKernels } from './runtime.ts';

/** Floats per chunk: four arrays of it stay in L2. */
const CHUNK = 16384;

type Kernels = NonNullable<ReturnType<typeof wasmKernels>>;

/**
 * Runs `kernel` over equally long `arrays`, chunk by chunk, in the kernels' memory: copies each
 * chunk of every array in, calls `kernel` with the arrays' byte offsets and the chunk length, and
 * copies back the arrays flagged in `written`. False (nothing written) without the kernels.
 */
function inChunks(arrays: readonly Float32Array[], written: readonly boolean[], kernel: (kern: Kernels, at: readonly number[], n: number) => void): boolean {
  const kern = wasmKernels();
  if (kern === null) return false;
  const length = arrays[0].length;
  const size = Math.min(CHUNK, length);
  beginLayout();
  const at = arrays.map(() => region(size, 4));
  if (!reserve(kern)) return false;
  const f = kern.f32;
  for (let from = 0; from < length; from += CHUNK) {
    const n = Math.min(CHUNK, length - from);
    arrays.forEach((a, i) => f.set(a.subarray(from, from + n), at[i] >> 2));
    kernel(kern, at, n);
    arrays.forEach((a, i) => {
      if (written[i]) a.set(f.subarray(at[i] >> 2, (at[i] >> 2) + n), from);
    });
  }
  return true;
}

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
