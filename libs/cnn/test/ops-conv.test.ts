// The fast convolution path (im2col + blocked GEMM) against the direct reference loops, the
// GEMM against a triple loop, both for the plain JS kernels and the WebAssembly SIMD ones that
// take over behind the same functions; and hand-computed convolution cases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conv2d, convTranspose2d, createRng, kernelBackend, setWasmKernelsEnabled, tensor } from '../src/index.ts';
import { type Conv2dDims, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward, convOutSize } from '../src/kernels/conv.ts';
import { conv2dReferenceBackwardInput, conv2dReferenceBackwardWeight, conv2dReferenceForward } from '../src/kernels/conv-reference.ts';
import { sgemm } from '../src/kernels/gemm.ts';
import { convPasses, gemmAgainstTripleLoop, maxRelDiff as maxDiff, randArray } from './kernel-helpers.ts';


/** Largest |a − b| / (1 + |b|). */
function dims(n: number, cIn: number, h: number, w: number, cOut: number, kh: number, kw: number, stride: number, pad: number, dil: number, groups: number): Conv2dDims {
  return {
    n, cIn, h, w, cOut, kh, kw, strideH: stride, strideW: stride, padH: pad, padW: pad, dilH: dil, dilW: dil, groups,
    outH: convOutSize(h, kh, stride, pad, dil),
    outW: convOutSize(w, kw, stride, pad, dil),
  };
}

for (const backend of ['js', 'wasm-simd'] as const) {
  describe(`${backend} kernels`, () => {
    beforeAll(() => setWasmKernelsEnabled(backend === 'wasm-simd'));
    afterAll(() => setWasmKernelsEnabled(true));

    it(`runs on the ${backend} backend`, () => {
      expect(kernelBackend()).toBe(backend);
    });

    describe(`sgemm against the triple loop (${backend})`, () => {
      const rng = createRng(21);
      // Sizes cover the 2×4 micro-kernel edges (odd m, n mod 4 ≠ 0) and more than one KC/NC tile.
      const sizes: [number, number, number][] = [
        [1, 1, 1],
        [3, 5, 7],
        [6, 784, 25],
        [16, 150, 100],
        [7, 300, 270],
        [33, 9, 513],
      ];
      gemmAgainstTripleLoop(rng, sizes, sgemm);
    });

    describe(`conv2d fast path equals the direct reference (${backend})`, () => {
      const rng = createRng(22);
      for (const stride of [1, 2, 3])
        for (const pad of [0, 1, 2])
          for (const dil of [1, 2])
            for (const groups of [1, 2])
              for (const cPerGroup of [1, 3])
                for (const [kh, kw] of [
                  [1, 1],
                  [3, 3],
                  [5, 2],
                ]) {
                  const d = dims(2, cPerGroup * groups, 9, 8, 4 * groups, kh, kw, stride, pad, dil, groups);
                  if (d.outH < 1 || d.outW < 1) continue;
                  it(`stride ${stride} padding ${pad} dilation ${dil} groups ${groups} cIn ${d.cIn} kernel ${kh}x${kw} input 9x8: forward, backward input, backward weight`, () => {
                    const x = randArray(rng, d.n * d.cIn * d.h * d.w);
                    const w = randArray(rng, d.cOut * cPerGroup * kh * kw);
                    const b = randArray(rng, d.cOut);
                    const outSize = d.n * d.cOut * d.outH * d.outW;
                    const fast = new Float32Array(outSize);
                    const ref = new Float32Array(outSize);
                    conv2dForward(x, w, b, fast, d);
                    conv2dReferenceForward(x, w, b, ref, d);
                    expect(maxDiff(fast, ref)).toBeLessThan(1e-5);

                    const g = randArray(rng, outSize);
                    // Backward kernels accumulate: start both from the same non-zero gradient.
                    const gx0 = randArray(rng, x.length);
                    const gxFast = gx0.slice();
                    const gxRef = gx0.slice();
                    conv2dBackwardInput(g, w, gxFast, d);
                    conv2dReferenceBackwardInput(g, w, gxRef, d);
                    expect(maxDiff(gxFast, gxRef)).toBeLessThan(1e-5);

                    const gw0 = randArray(rng, w.length);
                    const gwFast = gw0.slice();
                    const gwRef = gw0.slice();
                    conv2dBackwardWeight(x, g, gwFast, d);
                    conv2dReferenceBackwardWeight(x, g, gwRef, d);
                    expect(maxDiff(gwFast, gwRef)).toBeLessThan(1e-5);
                  });
                }

      it('the same inputs give bit-identical outputs and gradients on repeated calls', () => {
        const d = dims(4, 6, 12, 12, 16, 5, 5, 1, 2, 1, 1);
        const x = randArray(rng, d.n * d.cIn * d.h * d.w);
        const w = randArray(rng, d.cOut * d.cIn * 25);
        const g = randArray(rng, d.n * d.cOut * d.outH * d.outW);
        const run = (): Float32Array[] => convPasses(x, w, null, g, d);
        const a = run();
        // A differently shaped call in between must not leak through the shared scratch buffers.
        const d2 = dims(1, 3, 30, 30, 2, 3, 3, 1, 0, 1, 1);
        conv2dForward(randArray(rng, 2700), randArray(rng, 54), null, new Float32Array(2 * 28 * 28), d2);
        const b = run();
        for (let i = 0; i < 3; i++) expect(new Uint32Array(b[i].buffer)).toEqual(new Uint32Array(a[i].buffer));
      });
    });
  });
}

describe('conv2d hand-computed cases', () => {
  it('3x3 input 1..9, 2x2 ones kernel, padding 1 sums each window of the zero-padded input', () => {
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
    const w = tensor([1, 1, 1, 1], [1, 1, 2, 2]);
    const y = conv2d(x, w, null, { padding: 1 });
    expect(y.shape).toEqual([1, 1, 4, 4]);
    expect(Array.from(y.data)).toEqual([1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9]);
  });

  it('stride 2, bias 10, dilation 2 on a 5x5 input picks the corners of each 3x3 span', () => {
    const x = tensor(Array.from({ length: 25 }, (_, i) => i + 1), [1, 1, 5, 5]);
    const w = tensor([1, 1, 1, 1], [1, 1, 2, 2]);
    const y = conv2d(x, w, tensor([10], [1]), { stride: 2, dilation: 2 });
    // Window at (0,0): 1 + 3 + 11 + 13 = 28, plus the bias; at (0,1): 3 + 5 + 13 + 15 = 36, plus 10.
    expect(y.shape).toEqual([1, 1, 2, 2]);
    expect(Array.from(y.data)).toEqual([38, 46, 78, 86]);
  });

  it('groups 2: each output channel sees only its own input channel', () => {
    const x = tensor([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]);
    const w = tensor([1, 2], [2, 1, 1, 1]);
    const y = conv2d(x, w, null, { groups: 2 });
    expect(Array.from(y.data)).toEqual([1, 2, 3, 4, 20, 40, 60, 80]);
  });

  it('convTranspose2d stride 2 scatters each input pixel into a 2x2 block', () => {
    const x = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
    const w = tensor([1, 10, 100, 1000], [1, 1, 2, 2]);
    const y = convTranspose2d(x, w, null, { stride: 2 });
    expect(y.shape).toEqual([1, 1, 4, 4]);
    expect(Array.from(y.data)).toEqual([1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000]);
  });

  it('convTranspose2d output size (H−1)·stride − 2·padding + dilation·(k−1) + outputPadding + 1', () => {
    const x = tensor(new Float32Array(2 * 3 * 5 * 4), [2, 3, 5, 4]);
    const w = tensor(new Float32Array(3 * 2 * 3 * 3), [3, 2, 3, 3]);
    const y = convTranspose2d(x, w, null, { stride: [2, 3], padding: 1, outputPadding: [1, 2] });
    expect(y.shape).toEqual([2, 2, 4 * 2 - 2 + 2 + 1 + 1, 3 * 3 - 2 + 2 + 2 + 1]);
  });
});
