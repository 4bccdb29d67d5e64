// SGEMM on the WebAssembly SIMD micro-kernel: the fast path behind `sgemm` (../gemm.ts).
//
// Operands are copied into the kernels' memory. A is read in place when transposed (its MR rows
// of one k step are then contiguous) and packed into MR-row panels otherwise; B is read in place
// when not transposed (NR consecutive floats of a row) and packed into NR-column panels otherwise.
// C is kept with its rows padded to a multiple of NR, so every micro-kernel tile is whole: the
// extra columns read past the end of B's rows and are dropped when C is copied out.

import { beginLayout, region, reserve, wasmKernels } from './runtime.ts';

/** The first `n` values of `a` (a view, no copy), so `set` copies no more than the operand. */
function head(a: Float32Array, n: number): Float32Array {
  return a.length === n ? a : a.subarray(0, n);
}

/**
 * Same contract as `sgemm`: C[m×n] (+)= op(A)[m×k] · op(B)[k×n] (+ bias[n] on every row),
 * row-major. Returns false (and does nothing) when the WebAssembly kernels are unavailable, so
 * the caller runs the JS kernel.
 */
export function sgemmWasm(
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  transA: boolean,
  transB: boolean,
  accumulate: boolean,
  bias: Float32Array | null = null,
): boolean {
  const kern = wasmKernels();
  if (kern === null || m === 0 || n === 0 || k === 0) return false;
  const { mr: MR, nv } = kern.shape.main;
  const NR = 4 * nv;
  const nPad = Math.ceil(n / NR) * NR;
  const mPad = Math.ceil(m / MR) * MR;
  beginLayout();
  const aAt = region(m * k);
  const apAt = transA ? 0 : region(mPad * k);
  const bAt = region(k * n, NR);
  const bpAt = transB ? region(nPad * k) : 0;
  const cAt = region(m * nPad);
  const cDenseAt = nPad === n ? cAt : region(m * n);
  const biasAt = bias === null ? 0 : region(n);
  if (!reserve(kern)) return false;
  const { fn } = kern;
  kern.f32.set(head(a, m * k), aAt >> 2);
  kern.f32.set(head(b, k * n), bAt >> 2);

  let aBase = aAt;
  let aPanel = 4 * MR;
  let as = 4 * m;
  if (!transA) {
    if (mPad !== m) fn.zero(apAt, mPad * k * 4);
    fn.pack(aAt, 4 * k, 4, m, k, MR, apAt);
    aBase = apAt;
    aPanel = 4 * MR * k;
    as = 4 * MR;
  }
  let bBase = bAt;
  let bPanel = 4 * NR;
  let bs = 4 * n;
  if (transB) {
    if (nPad !== n) fn.zero(bpAt, nPad * k * 4);
    fn.pack(bAt, 4 * k, 4, n, k, NR, bpAt);
    bBase = bpAt;
    bPanel = 4 * NR * k;
    bs = 4 * NR;
  }

  if (accumulate) {
    kern.f32.set(head(c, m * n), cDenseAt >> 2);
    if (cDenseAt !== cAt) fn.copy2d(cDenseAt, 0, 4 * n, cAt, 0, 4 * nPad, 1, m, n, 0);
  } else {
    fn.zero(cAt, m * nPad * 4);
    if (bias !== null) {
      // Every row of C starts from the bias: the sums then run ((b + a0·b0) + a1·b1) + ….
      kern.f32.set(head(bias, n), biasAt >> 2);
      fn.copy2d(biasAt, 0, 0, cAt, 0, 4 * nPad, 1, m, n, 0);
    }
  }
  fn.gemm(m, nPad, k, aBase, aPanel, as, bBase, bPanel, bs, cAt, 4 * nPad);
  if (cDenseAt !== cAt) fn.copy2d(cAt, 0, 4 * nPad, cDenseAt, 0, 4 * n, 1, m, n, 0);
  c.set(kern.f32.subarray(cDenseAt >> 2, (cDenseAt >> 2) + m * n));
  return true;
}
