// The softmax behind crossEntropy on the WebAssembly SIMD kernels: max, sum and exponentials in
// float64 like the JS loop of ops/loss.ts (same order of the sums), with the exponential evaluated
// by the kernels (a few units in the last place of float64 from Math.exp, so the float32 results
// agree with the JS loop's to rounding). Returns false when it does not apply (no kernels, an odd
// number of positions per sample, too large) and the caller runs its JS loop.

import { beginLayout, region, reserve, wasmKernels } from './runtime.ts';

/**
 * Softmax of logits z [n, c, inner] along c into prob (float32), and per position r = b·inner + i
 * the max over the classes and the sum of exp(z − max) (float64) into max[r] and sum[r].
 */
export function softmaxWasm(z: Float32Array, prob: Float32Array, n: number, c: number, inner: number, max: Float64Array, sum: Float64Array): boolean {
  const kern = wasmKernels();
  if (kern === null || inner % 2 !== 0 || n * c * inner === 0) return false;
  const plane = c * inner;
  beginLayout();
  const zAt = region(n * plane);
  const pAt = region(n * plane);
  const exAt = region(2 * plane);
  const mAt = region(2 * inner);
  const sAt = region(2 * inner);
  if (!reserve(kern)) return false;
  kern.f32.set(z.subarray(0, n * plane), zAt >> 2);
  const f64 = new Float64Array(kern.f32.buffer);
  for (let b = 0; b < n; b++) {
    kern.fn.softmax_xent(zAt + 4 * b * plane, pAt + 4 * b * plane, exAt, c, inner, mAt, sAt);
    max.set(f64.subarray(mAt >> 3, (mAt >> 3) + inner), b * inner);
    sum.set(f64.subarray(sAt >> 3, (sAt >> 3) + inner), b * inner);
  }
  prob.set(kern.f32.subarray(pAt >> 2, (pAt >> 2) + n * plane));
  return true;
}
