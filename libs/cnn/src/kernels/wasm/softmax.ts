// The softmax behind crossEntropy on the WebAssembly SIMD kernels, and its logit gradient (see
// `xentGradWasm`). The softmax: max, sum and exponentials in float64 like the JS loop of
// ops/loss.ts (same order of the sums), with the exponential evaluated by the kernels (a few units in the last place of float64 from Math.exp, so the float32 results
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

/**
 * The cross-entropy's logit gradient over positions: gz[b][k][i] += w[b·inner + i]·(prob[b][k][i] −
 * [k = labels[b·inner + i]]), each element in float64 and rounded to float32 once, as the JS loop of
 * ops/loss.ts does it: the same bytes. False (gz untouched) when it does not apply: no kernels,
 * positions per sample not a multiple of 4 (classification's one), or too large.
 */
export function xentGradWasm(gz: Float32Array, prob: Float32Array, w: Float64Array, labels: Int32Array, n: number, c: number, inner: number): boolean {
  const kern = wasmKernels();
  const size = n * c * inner;
  const rows = n * inner;
  if (kern === null || inner % 4 !== 0 || size === 0) return false;
  beginLayout();
  const pAt = region(size);
  const gAt = region(size);
  const wAt = region(2 * rows);
  const lAt = region(rows);
  if (!reserve(kern)) return false;
  kern.f32.set(prob.subarray(0, size), pAt >> 2);
  kern.f32.set(gz.subarray(0, size), gAt >> 2);
  new Float64Array(kern.f32.buffer, wAt, rows).set(w.subarray(0, rows));
  kern.i32.set(labels.subarray(0, rows), lAt >> 2);
  kern.fn.xent_grad(pAt, wAt, lAt, gAt, n, c, inner);
  gz.set(kern.f32.subarray(gAt >> 2, (gAt >> 2) + size));
  return true;
}
