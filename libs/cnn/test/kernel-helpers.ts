// Shared by the tests that hold the WebAssembly kernels against the JS loops.
import { afterEach, expect, it } from 'vitest';
import { buildModel, createRng, crossEntropy, fromData, getZooSpec, setWasmKernelsEnabled } from '../src/index.ts';
import { type Conv2dDims, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward, convOutSize } from '../src/kernels/conv.ts';
import { sgemmReference } from '../src/kernels/gemm.ts';

type Rng = ReturnType<typeof createRng>;

/** `n` values uniform in [−1, 1). */
export function randArray(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/**
 * Gradient bytes of one LeNet-5 training step (batch `n`, summed loss), all parameters
 * concatenated; the same seeds as kernels-wasm-worker.mjs and kernels-fma-worker.mjs.
 */
export function lenetGradients(n: number): Float32Array {
  const model = buildModel(getZooSpec('lenet5'), { seed: 5 });
  const rng = createRng(6);
  const x = fromData(Float32Array.from({ length: n * 784 }, () => rng.next()), [n, 1, 28, 28]);
  const labels = Uint8Array.from({ length: n }, () => rng.int(10));
  crossEntropy(model.forward(x, { training: true }), labels, { reduction: 'sum' }).backward();
  return flat(model.params.map((p) => p.grad));
}

/** The arrays one after the other in one array. */
export function flat(arrays: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((s, a) => s + a.length, 0));
  let pos = 0;
  for (const a of arrays) {
    out.set(a, pos);
    pos += a.length;
  }
  return out;
}

/** A convolution's three passes with the kernels in use, into fresh arrays: [output, input gradient, weight gradient]. */
export function convPasses(x: Float32Array, w: Float32Array, b: Float32Array | null, g: Float32Array, d: Conv2dDims): Float32Array[] {
  const out = new Float32Array(g.length);
  const gx = new Float32Array(x.length);
  const gw = new Float32Array(w.length);
  conv2dForward(x, w, b, out, d);
  conv2dBackwardInput(g, w, gx, d);
  conv2dBackwardWeight(x, g, gw, d);
  return [out, gx, gw];
}

/** m, n, k off every multiple of the 4×8 micro-tile and of 16; LeNet's linear shapes; one k > 512. */
export const GEMM_SIZES: readonly (readonly [number, number, number])[] = [
  [1, 1, 1],
  [5, 3, 2],
  [7, 9, 13],
  [13, 17, 31],
  [6, 784, 25],
  [64, 120, 400],
  [120, 400, 64],
  [33, 65, 517],
];

/** An sgemm-shaped call: C (m × n) = op(A)·op(B) (+ C when `accumulate`). */
export type GemmCall = (m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array, transA: boolean, transB: boolean, accumulate: boolean) => void;

/**
 * One test per size and transpose / accumulate case: `gemm` on random operands must match the
 * triple loop (`sgemmReference`) within a relative 1e-5.
 */
export function gemmAgainstTripleLoop(rng: Rng, sizes: readonly (readonly [number, number, number])[], gemm: GemmCall): void {
  for (const [m, n, k] of sizes)
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const accumulate of [false, true]) {
          it(`m ${m} n ${n} k ${k} transA ${transA} transB ${transB} accumulate ${accumulate}`, () => {
            const a = randArray(rng, m * k);
            const b = randArray(rng, k * n);
            const c0 = randArray(rng, m * n);
            const c = c0.slice();
            const ref = c0.slice();
            gemm(m, n, k, a, b, c, transA, transB, accumulate);
            sgemmReference(m, n, k, a, b, ref, transA, transB, accumulate);
            expect(maxRelDiff(c, ref)).toBeLessThan(1e-5);
          });
        }
}

/** Largest |a − b| / (1 + |b|). */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return m;
}

/** The bit patterns of `a`, for bit-for-bit comparisons (NaN and −0 included). */
export function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Runs `fn` on the JS kernels. */
export function onJs<T>(fn: () => T): T {
  setWasmKernelsEnabled(false);
  try {
    return fn();
  } finally {
    setWasmKernelsEnabled(true);
  }
}

/** Call at the top of a test file: every test starts with the WebAssembly kernels on. */
export function restoreKernelsAfterEach(): void {
  afterEach(() => setWasmKernelsEnabled(true));
}

/** The dimensions of a convolution of `n` samples, dilation 1: kernel `k`, padding `pad`, `groups`, `stride`. */
export function convDims(n: number, cIn: number, h: number, w: number, cOut: number, k: [number, number], pad: [number, number], groups: number, stride: [number, number] = [1, 1]): Conv2dDims {
  const [kh, kw] = k;
  const [padH, padW] = pad;
  const [strideH, strideW] = stride;
  return {
    n, cIn, h, w, cOut, kh, kw, strideH, strideW, padH, padW, dilH: 1, dilW: 1, groups,
    outH: convOutSize(h, kh, strideH, padH, 1),
    outW: convOutSize(w, kw, strideW, padW, 1),
  };
}

/** Convolutions that cover the kernels' paths (blockings, groups, padding, strides, 1×1, the column matrix). */
export const CONV_CASES: readonly [string, Conv2dDims][] = [
  ['LeNet conv1: 1→6 channels, 5x5, padding 2, 28x28', convDims(3, 1, 28, 28, 6, [5, 5], [2, 2], 1)],
  ['LeNet conv2: 6→16 channels, 5x5, 14x14', convDims(3, 6, 14, 14, 16, [5, 5], [0, 0], 1)],
  ['3x3 padding 1, 7→5 channels (no multiple of 2, 3 or 4), 11x9', convDims(2, 7, 11, 9, 5, [3, 3], [1, 1], 1)],
  ['groups 2, 6→4 channels, 3x2 kernel, padding (1, 0), 9x8', convDims(2, 6, 9, 8, 4, [3, 2], [1, 0], 2)],
  ['padding 3 larger than a 3x3 kernel, 3 input channels, 5x6', convDims(2, 3, 5, 6, 3, [3, 3], [3, 3], 1)],
  ['1x1 kernel with padding 1 (not pointwise), 13 channels', convDims(2, 13, 6, 7, 9, [1, 1], [1, 1], 1)],
  ['kernel as large as the input, 12 output channels', convDims(2, 2, 5, 5, 12, [5, 5], [0, 0], 1)],
  ['groups 2, 4→6 channels, 2x4 kernel (kw = MR: scattered input gradient), padding (1, 3), 9x11', convDims(2, 4, 9, 11, 6, [2, 4], [1, 3], 2)],
  ['7x7 kernel, padding 3, 3→5 channels, 10x13', convDims(2, 3, 10, 13, 5, [7, 7], [3, 3], 1)],
  ['pointwise 1x1, 6→3 channels (input gradient by the flipped filter), 7x9', convDims(2, 6, 7, 9, 3, [1, 1], [0, 0], 1)],
  ['3x3 padding 1, 4→16 channels (input gradient through the column matrix), 12x12', convDims(2, 4, 12, 12, 16, [3, 3], [1, 1], 1)],
  ['stride 2, 3x3 padding 1, 5→6 channels, 13x11', convDims(3, 5, 13, 11, 6, [3, 3], [1, 1], 1, [2, 2])],
  ['stride 2, 5x5 padding 2 (two extra rows per phase), 3→8 channels, 15x17', convDims(2, 3, 15, 17, 8, [5, 5], [2, 2], 1, [2, 2])],
  ['stride 2, 7x7 padding 3 (a ResNet stem), 3→8 channels, 20x20', convDims(2, 3, 20, 20, 8, [7, 7], [3, 3], 1, [2, 2])],
  ['stride 3, 3x3 no padding (input rows and columns left over), 2→5 channels, 11x10', convDims(2, 2, 11, 10, 5, [3, 3], [0, 0], 1, [3, 3])],
  ['stride (1, 2), 1x3 kernel, padding (0, 1), 3→4 channels, 6x9', convDims(2, 3, 6, 9, 4, [1, 3], [0, 1], 1, [1, 2])],
  ['stride (1, 2), 3x1 kernel, rows of 5 (the im2col input gradient), 2→3 channels, 8x9', convDims(2, 2, 8, 9, 3, [3, 1], [1, 0], 1, [1, 2])],
  ['stride (3, 2), 2x4 kernel, padding (1, 2), groups 2, 4→6 channels, 14x15', convDims(2, 4, 14, 15, 6, [2, 4], [1, 2], 2, [3, 2])],
  ['pointwise 1x1 stride 2 (a shortcut projection), 6→10 channels, 9x9', convDims(2, 6, 9, 9, 10, [1, 1], [0, 0], 1, [2, 2])],
];
