// Batch normalisation (optionally followed by ReLU or leaky ReLU) on the WebAssembly SIMD
// kernels: the fast path of ops/norm.ts. The input is copied into the kernels' memory once per
// pass and the statistics, the normalisation and the activation all run there.
//
// The per-element arithmetic is the JS loops' (float64, the same operations in the same order, one
// rounding to float32), so normalising and the input gradient give the JS loops' bytes once the
// channel statistics are equal; the channel sums run in four float64 lanes plus a tail,
// ((l0 + l1) + (l2 + l3)) + tail, where the JS loops sum element after element: the statistics
// differ from those in the last bits, and are the same on every thread. The activation is the
// relu_fwd / leaky_fwd kernel and its gradient relu_bwd / leaky_bwd into zeros, as the separate
// ops run them, so a fused layer gives the bytes of the separate ops on these kernels.
// Each returns false (nothing written) when the kernels are unavailable or the tensor too large.

import type { WasmKernels } from './runtime.ts';
import { beginLayout, region, reserve, wasmKernels } from './runtime.ts';

/** Bytes of float64 coefficients per channel (see the bn_* kernels in ./module.ts). */
const COEF_BYTES = 64;

/** Per-channel float64 coefficients: coefs[i][ch] goes to at + 64·ch + 8·i. */
function writeCoefs(kern: WasmKernels, at: number, coefs: readonly Float64Array[]): void {
  const f64 = new Float64Array(kern.f32.buffer, at, (coefs[0].length * COEF_BYTES) / 8);
  coefs.forEach((values, i) => {
    for (let ch = 0; ch < values.length; ch++) f64[ch * (COEF_BYTES / 8) + i] = values[ch];
  });
}

function readSums(kern: WasmKernels, at: number, count: number): Float64Array {
  return new Float64Array(kern.f32.buffer, at, count).slice();
}

/** The normalisation's per-channel coefficients: y = (x − mean)·scale + shift. */
export interface BatchNormCoefs {
  mean: Float64Array;
  scale: Float64Array;
  shift: Float64Array;
}

/**
 * The moments the statistics need: Σ x per channel over (N, H, W) with `mean` null, else
 * Σ (x − mean[ch])² (float64 [C]).
 */
export type ChannelMoments = (mean: Float64Array | null) => Float64Array;

/**
 * y = act((x − mean)·scale + shift) with the coefficients `coefs` computes from the moments of x
 * (it may call `moments` or not); act is none (slope null), ReLU (slope 0) or leaky ReLU.
 */
export function batchNormForwardWasm(x: Float32Array, y: Float32Array, n: number, c: number, hw: number, slope: number | null, coefs: (moments: ChannelMoments) => BatchNormCoefs): boolean {
  const kern = wasmKernels();
  const size = n * c * hw;
  if (kern === null || size === 0) return false;
  beginLayout();
  const xAt = region(size, 4);
  const coefAt = region((c * COEF_BYTES) / 4);
  const sumAt = region(2 * c);
  if (!reserve(kern)) return false;
  const { fn } = kern;
  kern.f32.set(x.length === size ? x : x.subarray(0, size), xAt >> 2);
  const k = coefs((mean) => {
    if (mean !== null) writeCoefs(kern, coefAt, [mean]);
    (mean === null ? fn.bn_sum : fn.bn_sqdev)(xAt, xAt, n, c, hw, coefAt, sumAt);
    return readSums(kern, sumAt, c);
  });
  writeCoefs(kern, coefAt, [k.mean, k.scale, k.shift]);
  fn.bn_apply(xAt, xAt, n, c, hw, coefAt);
  if (slope === 0) fn.relu_fwd(xAt, xAt, size);
  else if (slope !== null) fn.leaky_fwd(xAt, xAt, size, slope);
  y.set(kern.f32.subarray(xAt >> 2, (xAt >> 2) + size));
  return true;
}

/** What the input gradient needs besides the statistics: gx += k·(dy − mdy − (x − mean)·invStd·mdyx). */
export interface BatchNormGradCoefs {
  k: Float64Array;
  mdy: Float64Array;
  mdyx: Float64Array;
}

/**
 * Backward of `batchNormForwardWasm` in training mode. gy is the gradient of the layer's output y
 * (after the activation, which y must then be; y is not read without one). `sums` receives Σ dy and
 * Σ dy·(x − mean)·invStd per channel (interleaved, float64 [2C]; dy is the normalisation's output
 * gradient) and returns the input-gradient coefficients, or null when gx is not wanted (gx null).
 */
export function batchNormBackwardWasm(
  gy: Float32Array,
  y: Float32Array,
  x: Float32Array,
  gx: Float32Array | null,
  n: number,
  c: number,
  hw: number,
  slope: number | null,
  mean: Float64Array,
  invStd: Float64Array,
  sums: (s: Float64Array) => BatchNormGradCoefs | null,
): boolean {
  const kern = wasmKernels();
  const size = n * c * hw;
  if (kern === null || size === 0) return false;
  beginLayout();
  const gyAt = region(size, 4);
  const yAt = slope === null ? 0 : region(size, 4);
  const dyAt = slope === null ? gyAt : region(size, 4);
  const xAt = region(size);
  const gxAt = gx === null ? 0 : region(size);
  const coefAt = region((c * COEF_BYTES) / 4);
  const sumAt = region(2 * c);
  if (!reserve(kern)) return false;
  const { fn } = kern;
  const head = (a: Float32Array): Float32Array => (a.length === size ? a : a.subarray(0, size));
  kern.f32.set(head(gy), gyAt >> 2);
  kern.f32.set(head(x), xAt >> 2);
  if (slope !== null) {
    // The activation's input gradient, added into zeros as into a fresh gradient.
    kern.f32.set(head(y), yAt >> 2);
    fn.zero(dyAt, 4 * (size + 4));
    if (slope === 0) fn.relu_bwd(yAt, gyAt, dyAt, size);
    else fn.leaky_bwd(yAt, gyAt, dyAt, size, slope);
  }
  writeCoefs(kern, coefAt, [mean, invStd]);
  fn.bn_grad_sums(dyAt, xAt, n, c, hw, coefAt, sumAt);
  const k = sums(readSums(kern, sumAt, 2 * c));
  if (gx === null || k === null) return true;
  kern.f32.set(head(gx), gxAt >> 2);
  writeCoefs(kern, coefAt, [mean, invStd, k.k, k.mdy, k.mdyx]);
  fn.bn_grad_input(dyAt, xAt, gxAt, gxAt, n, c, hw, coefAt);
  gx.set(kern.f32.subarray(gxAt >> 2, (gxAt >> 2) + size));
  return true;
}
