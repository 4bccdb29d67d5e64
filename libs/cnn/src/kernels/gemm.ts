// Single-precision matrix multiply for the conv and linear layers, cache-blocked: B is walked
// in KC×NC tiles (256 KB, cache-resident) and each tile is swept by a 2×4 register micro-kernel
// that reads A and B in place through strides, so one kernel covers all four transpose cases.
// Measured in V8 on the LeNet-5 shapes (npm run bench), this beat BLIS-style packed
// panels with 4×4 kernels: at these sizes the packing copy costs what it saves, and 8 double
// accumulators are what fit the registers. The summation order depends only on (m, n, k), so
// results are bit-reproducible. Kept behind one function so a WebAssembly SIMD version can
// replace it.

import { sgemmWasm } from './wasm/gemm.ts';

/** Depth of a tile: a micro-kernel call sums over at most KC products before storing. */
const KC = 256;
/** Width of a tile: KC·NC floats of B stay in cache while every row pair of A passes over them. */
const NC = 256;

/**
 * C[m×n] (+)= op(A)[m×k] · op(B)[k×n] (+ `bias`[n] on every row, only without `accumulate`),
 * all matrices dense and row-major.
 * op(A) = A stored [m×k], or Aᵀ with A stored [k×m] when `transA`.
 * op(B) = B stored [k×n], or Bᵀ with B stored [n×k] when `transB`.
 * `accumulate` adds into C; otherwise C is overwritten.
 */
export function sgemm(
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
): void {
  if (bias !== null && accumulate) throw new RangeError('sgemm: a bias needs accumulate = false');
  if (sgemmWasm(m, n, k, a, b, c, transA, transB, accumulate, bias)) return;
  sgemmJs(m, n, k, a, b, c, transA, transB, accumulate);
  if (bias !== null) addRowBias(c, bias, m, n);
}

/** c[i][j] += bias[j]. */
function addRowBias(c: Float32Array, bias: Float32Array, m: number, n: number): void {
  for (let i = 0, o = 0; i < m; i++) for (let j = 0; j < n; j++, o++) c[o] += bias[j];
}

function sgemmJs(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array, transA: boolean, transB: boolean, accumulate: boolean): void {
  if (!accumulate) c.fill(0, 0, m * n);
  if (m === 0 || n === 0 || k === 0) return;
  // Element (i, p) of op(A) is a[i·ars + p·aps]; element (p, j) of op(B) is b[p·bps + j·bjs].
  const ars = transA ? 1 : k;
  const aps = transA ? m : 1;
  const bps = transB ? 1 : n;
  const bjs = transB ? k : 1;
  const m2 = m - (m % 2);
  const n4 = n - (n % 4);
  for (let jc = 0; jc < n; jc += NC) {
    const je = Math.min(n, jc + NC);
    const je4 = Math.min(je, n4);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      for (let i = 0; i < m; i += 2) {
        const a0 = i * ars + pc * aps;
        const pairRow = i < m2;
        let j = jc;
        for (; j < je4; j += 4) {
          if (pairRow) micro2x4(kc, a, a0, ars, aps, b, pc * bps + j * bjs, bps, bjs, c, i * n + j, n);
          else micro1x4(kc, a, a0, aps, b, pc * bps + j * bjs, bps, bjs, c, i * n + j);
        }
        for (; j < je; j++) {
          dot(kc, a, a0, aps, b, pc * bps + j * bjs, bps, c, i * n + j);
          if (pairRow) dot(kc, a, a0 + ars, aps, b, pc * bps + j * bjs, bps, c, (i + 1) * n + j);
        }
      }
    }
  }
}

/** C[2×4] at o (row stride ldc) += A-rows(2) · B-cols(4) over kc; the 8 sums live in locals. */
function micro2x4(kc: number, a: Float32Array, ai: number, ars: number, aps: number, b: Float32Array, bi: number, bps: number, bjs: number, c: Float32Array, o: number, ldc: number): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  const b1 = bjs;
  const b2 = 2 * bjs;
  const b3 = 3 * bjs;
  for (let p = 0; p < kc; p++, ai += aps, bi += bps) {
    const y0 = b[bi], y1 = b[bi + b1], y2 = b[bi + b2], y3 = b[bi + b3];
    let x = a[ai];
    c00 += x * y0; c01 += x * y1; c02 += x * y2; c03 += x * y3;
    x = a[ai + ars];
    c10 += x * y0; c11 += x * y1; c12 += x * y2; c13 += x * y3;
  }
  c[o] += c00; c[o + 1] += c01; c[o + 2] += c02; c[o + 3] += c03;
  o += ldc;
  c[o] += c10; c[o + 1] += c11; c[o + 2] += c12; c[o + 3] += c13;
}

/** C[1×4] at o += A-row · B-cols(4) over kc (the odd last row). */
function micro1x4(kc: number, a: Float32Array, ai: number, aps: number, b: Float32Array, bi: number, bps: number, bjs: number, c: Float32Array, o: number): void {
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  const b1 = bjs;
  const b2 = 2 * bjs;
  const b3 = 3 * bjs;
  for (let p = 0; p < kc; p++, ai += aps, bi += bps) {
    const x = a[ai];
    c0 += x * b[bi]; c1 += x * b[bi + b1]; c2 += x * b[bi + b2]; c3 += x * b[bi + b3];
  }
  c[o] += c0; c[o + 1] += c1; c[o + 2] += c2; c[o + 3] += c3;
}

/** c[o] += A-row · B-col over kc (the last n mod 4 columns). */
function dot(kc: number, a: Float32Array, ai: number, aps: number, b: Float32Array, bi: number, bps: number, c: Float32Array, o: number): void {
  let s = 0;
  for (let p = 0; p < kc; p++, ai += aps, bi += bps) s += a[ai] * b[bi];
  c[o] += s;
}

/** Plain triple loop with the same contract as `sgemm`; the reference the tests compare against. */
export function sgemmReference(
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  transA: boolean,
  transB: boolean,
  accumulate: boolean,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = accumulate ? c[i * n + j] + s : s;
    }
  }
}
