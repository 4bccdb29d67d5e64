// Reductions over flat float32 arrays on the WebAssembly SIMD kernels: the fast paths behind the
// engine's shard-gradient checks and sum (libs/engine/src/reduce.ts), which run on the coordinator
// after every step. Same bytes as the JS loops they replace (see each function), the arrays going
// through the kernels' memory in chunks that stay in cache. Each returns false / undefined (nothing
// written) when the kernels are unavailable or the arrays too large for their memory; the caller
// then runs its JS loop.

import { beginLayout, region, reserve, wasmKernels } from './runtime.ts';

/**
 * Floats per chunk and array: a multiple of 4 (so every chunk but the last is whole vectors and the
 * four lanes of Σ v² keep the elements ≡ l mod 4), and 8 arrays of it (512 KiB) stay in L2.
 */
const CHUNK = 16384;
/** Region bytes are rounded up to this (runtime.ts's alignment). */
const ALIGN = 64;

/**
 * out[i] = ((((0 + g0[i]) + g1[i]) + …) + g_last[i]) / count, every addition rounded to float32
 * and the division a float32 division: the bytes of adding the arrays in order into a zeroed
 * Float32Array, then dividing each element by `count` (JS's float64 add or divide of two float32
 * values, rounded to float32, is the float32 operation). Every array at least out.length long.
 * False (nothing written) without the kernels, with no arrays, or when `count` is not exactly a
 * float32 (beyond 2²⁴): the caller's JS loop runs then.
 */
export function sumInOrderInto(out: Float32Array, grads: readonly Float32Array[], count: number): boolean {
  const arrays = grads.length;
  const length = out.length;
  if (arrays === 0 || Math.fround(count) !== count) return false;
  for (const g of grads) if (g.length < length) return false;
  const kern = wasmKernels();
  if (kern === null) return false;
  const size = Math.min(CHUNK, length);
  // Every array's chunk in one region, `stride` bytes apart, each readable to a whole vector.
  const stride = Math.ceil(((size + 4) * 4) / ALIGN) * ALIGN;
  beginLayout();
  const src = region((stride / 4) * arrays);
  const dst = region(size, 4);
  if (!reserve(kern)) return false;
  const f = kern.f32;
  for (let from = 0; from < length; from += CHUNK) {
    const n = Math.min(CHUNK, length - from);
    for (let s = 0; s < arrays; s++) f.set(grads[s].subarray(from, from + n), (src + s * stride) >> 2);
    kern.fn.sum_in_order(src, stride, arrays, dst, n, count);
    out.set(f.subarray(dst >> 2, (dst >> 2) + n), from);
  }
  return true;
}

/**
 * Σ v² over `a` in float64: four partial sums (element i in sum i mod 4, in order; the elements
 * after the last whole group of four in sum 0), returned as (s0 + s1) + (s2 + s3). Finite exactly
 * when every value is (a NaN gives NaN, ±Infinity gives Infinity or NaN; finite float32 squares
 * cannot overflow it). Undefined without the kernels.
 */
export function sumOfSquaresF64(a: Float32Array): number | undefined {
  const kern = wasmKernels();
  if (kern === null) return undefined;
  const length = a.length;
  beginLayout();
  const acc = region(8);
  const src = region(Math.min(CHUNK, length));
  if (!reserve(kern)) return undefined;
  const f = kern.f32;
  f.fill(0, acc >> 2, (acc >> 2) + 8);
  let sum = 0;
  for (let from = 0; from < length; from += CHUNK) {
    const n = Math.min(CHUNK, length - from);
    f.set(a.subarray(from, from + n), src >> 2);
    sum = kern.fn.sum_squares(src, n, acc);
  }
  return sum;
}
