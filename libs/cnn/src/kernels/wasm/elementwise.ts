// Element-wise sums, ReLU, 2×2 pooling and the bias gradient on the WebAssembly SIMD kernels: the
// fast paths behind the JS loops of ops/elementwise.ts (add, rectify), gradient accumulation
// (Tensor.takeGrad, concat), kernels/pool.ts (maxPool2dForward/Backward) and kernels/conv.ts
// (conv2dBackwardBias). Scalar JS loops over large typed arrays with data-dependent branches run
// several nanoseconds per element, and even branch-free ones 2–6 over arrays larger than the
// caches; a copy into the kernels' memory, a vector loop and a copy back cost a fraction of that. Each returns false when it does not apply, and the caller runs its JS loop.
// Sums, ReLU and pooling give bit-identical results to the JS loops (they only select values, or
// add in the same order: a float32 sum is the float64 sum of two floats rounded once); the bias
// gradient sums in another order (float64 both).

import type { Pool2dDims } from '../pool.ts';
import { beginLayout, inChunks, region, reserve, wasmKernels } from './runtime.ts';

function head(a: Float32Array, n: number): Float32Array {
  return a.length === n ? a : a.subarray(0, n);
}

function head32(a: Int32Array, n: number): Int32Array {
  return a.length === n ? a : a.subarray(0, n);
}

/**
 * Below this many elements the JS loops run: copying into the kernels' memory and back costs more
 * than it saves on small arrays.
 */
const ADD_MIN = 1024;

/** out[i] = a[i] + b[i] (float32) for i < out.length; the same bytes as the JS loop. */
export function addWasm(a: Float32Array, b: Float32Array, out: Float32Array): boolean {
  const n = out.length;
  if (n < ADD_MIN) return false;
  return inChunks([head(a, n), head(b, n), out], [false, false, true], (kern, [aAt, bAt, oAt], m) => kern.fn.add_f32(aAt, bAt, oAt, m));
}

/** sink[i] += g[i] (float32) for i < sink.length; the same bytes as the JS loop. */
export function addIntoWasm(sink: Float32Array, g: Float32Array): boolean {
  const n = sink.length;
  if (n < ADD_MIN) return false;
  return inChunks([sink, head(g, n)], [true, false], (kern, [sAt, gAt], m) => kern.fn.add_f32(sAt, gAt, sAt, m));
}

/** out[i] = x[i] > 0 ? x[i] : 0 for i < out.length. */
export function reluWasm(x: Float32Array, out: Float32Array): boolean {
  const kern = wasmKernels();
  const n = out.length;
  if (kern === null || n === 0) return false;
  beginLayout();
  const xAt = region(n, 4);
  if (!reserve(kern)) return false;
  kern.f32.set(head(x, n), xAt >> 2);
  kern.fn.relu_fwd(xAt, xAt, n);
  out.set(kern.f32.subarray(xAt >> 2, (xAt >> 2) + n));
  return true;
}

/** gx[i] += x[i] > 0 ? g[i] : g[i]·0 for i < gx.length. */
export function reluBackwardWasm(x: Float32Array, g: Float32Array, gx: Float32Array): boolean {
  const kern = wasmKernels();
  const n = gx.length;
  if (kern === null || n === 0) return false;
  beginLayout();
  const xAt = region(n, 4);
  const gAt = region(n, 4);
  const gxAt = region(n, 4);
  if (!reserve(kern)) return false;
  const f = kern.f32;
  f.set(head(x, n), xAt >> 2);
  f.set(head(g, n), gAt >> 2);
  f.set(head(gx, n), gxAt >> 2);
  kern.fn.relu_bwd(xAt, gAt, gxAt, n);
  gx.set(f.subarray(gxAt >> 2, (gxAt >> 2) + n));
  return true;
}

/** out[i] = x[i] > 0 ? x[i] : x[i]·slope (the product in float64, rounded once), for i < out.length. */
export function leakyReluWasm(x: Float32Array, out: Float32Array, slope: number): boolean {
  if (out.length === 0) return false;
  return inChunks([head(x, out.length), out], [false, true], (kern, [xAt, oAt], n) => kern.fn.leaky_fwd(xAt, oAt, n, slope));
}

/** gx[i] += x[i] > 0 ? g[i] : g[i]·slope (in float64, rounded once), for i < gx.length. */
export function leakyReluBackwardWasm(x: Float32Array, g: Float32Array, gx: Float32Array, slope: number): boolean {
  const n = gx.length;
  if (n === 0) return false;
  return inChunks([head(x, n), head(g, n), gx], [false, false, true], (kern, [xAt, gAt, gxAt], m) => kern.fn.leaky_bwd(xAt, gAt, gxAt, m, slope));
}

/** maxPool2dForward for 2×2 windows, stride 2, no padding, at least 4 outputs per row. */
export function maxPool2dForwardWasm(x: Float32Array, out: Float32Array, argmax: Int32Array | null, d: Pool2dDims, sign: 1 | -1): boolean {
  const kern = wasmKernels();
  const { planes, h, w, kh, kw, strideH, strideW, padH, padW, outH, outW } = d;
  if (kern === null || kh !== 2 || kw !== 2 || strideH !== 2 || strideW !== 2 || padH !== 0 || padW !== 0 || outW < 4 || outH < 1) return false;
  const inSize = planes * h * w;
  const outSize = planes * outH * outW;
  beginLayout();
  const xAt = region(inSize);
  const outAt = region(outSize);
  const argAt = argmax === null ? 0 : region(outSize);
  if (!reserve(kern)) return false;
  kern.f32.set(head(x, inSize), xAt >> 2);
  kern.fn.maxpool2x2(xAt, outAt, argAt, planes, h, w, outH, outW, sign, argmax === null ? 0 : 1, h * w, 0);
  out.set(kern.f32.subarray(outAt >> 2, (outAt >> 2) + outSize));
  if (argmax !== null) argmax.set(kern.i32.subarray(argAt >> 2, (argAt >> 2) + outSize));
  return true;
}

/**
 * gradX[argmax[o]] += gradOut[o] in order of o (max-pooling backward). Every index must lie in
 * [0, gradX.length): the pooling forward produced them.
 */
export function maxPool2dBackwardWasm(gradOut: Float32Array, argmax: Int32Array, gradX: Float32Array): boolean {
  const kern = wasmKernels();
  const n = gradOut.length;
  if (kern === null || n === 0 || argmax.length < n) return false;
  beginLayout();
  const gAt = region(n);
  const iAt = region(n);
  const gxAt = region(gradX.length);
  if (!reserve(kern)) return false;
  kern.f32.set(gradOut, gAt >> 2);
  kern.i32.set(head32(argmax, n), iAt >> 2);
  kern.f32.set(gradX, gxAt >> 2);
  kern.fn.scatter_add(gAt, iAt, gxAt, n);
  gradX.set(kern.f32.subarray(gxAt >> 2, (gxAt >> 2) + gradX.length));
  return true;
}

/** gradB[ch] += Σ over the batch and positions of gradOut[n, ch, :]. */
export function biasGradWasm(gradOut: Float32Array, gradB: Float32Array, n: number, c: number, spatial: number): boolean {
  const kern = wasmKernels();
  const size = n * c * spatial;
  if (kern === null || size === 0) return false;
  beginLayout();
  const gAt = region(size);
  const bAt = region(c);
  if (!reserve(kern)) return false;
  kern.f32.set(head(gradOut, size), gAt >> 2);
  kern.f32.set(head(gradB, c), bAt >> 2);
  kern.fn.bias_grad(gAt, bAt, n, c, spatial);
  gradB.set(kern.f32.subarray(bAt >> 2, (bAt >> 2) + c));
  return true;
}
