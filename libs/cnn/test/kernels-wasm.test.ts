// The WebAssembly SIMD kernels against the JS reference kernels: GEMM in all transpose and
// accumulate cases on awkward sizes, the convolutions (strided too) against the direct loops, ReLU /
// pooling / bias gradient bit for bit against the JS loops, bit-reproducibility (repeated calls,
// another thread), and a whole LeNet-5 step with the backend on and off.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createOptimizer, createRng, fromData, kernelBackend, maxPool2d, type OptimizerSpec, type Param, relu, Tensor } from '../src/index.ts';
import { bits, CONV_CASES, GEMM_SIZES, convDims as dims, convPasses, gemmAgainstTripleLoop, lenetGradients, maxRelDiff, onJs, randArray, restoreKernelsAfterEach } from './kernel-helpers.ts';
import { conv2dBackwardBias, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward } from '../src/kernels/conv.ts';
import { conv2dReferenceBackwardInput, conv2dReferenceBackwardWeight, conv2dReferenceForward } from '../src/kernels/conv-reference.ts';
import { sgemm, sgemmReference } from '../src/kernels/gemm.ts';
import { type Pool2dDims, maxPool2dBackward, maxPool2dForward } from '../src/kernels/pool.ts';
import { sgemmWasm } from '../src/kernels/wasm/gemm.ts';
import { conv2dBackwardInputWasm, conv2dBackwardWeightWasm, conv2dForwardWasm } from '../src/kernels/wasm/conv.ts';
import { wasmMemoryBytes } from '../src/kernels/wasm/runtime.ts';


restoreKernelsAfterEach();

it('Node 20 runs the WebAssembly SIMD kernels', () => {
  expect(kernelBackend()).toBe('wasm-simd');
  expect(onJs(kernelBackend)).toBe('js');
});

describe('WebAssembly sgemm against the triple loop', () => {
  const rng = createRng(31);
  gemmAgainstTripleLoop(rng, GEMM_SIZES, (...args) => expect(sgemmWasm(...args)).toBe(true));

  it('operands longer than needed (subarray views into bigger buffers) are read only as far as m, n, k say', () => {
    const [m, n, k] = [5, 11, 7];
    const a = randArray(rng, m * k + 40);
    const b = randArray(rng, k * n + 40);
    const big = randArray(rng, m * n + 40);
    const c = big.subarray(0, m * n);
    const ref = new Float32Array(m * n);
    const tail = big.slice(m * n);
    sgemm(m, n, k, a, b, c, false, true, false);
    sgemmReference(m, n, k, a, b, ref, false, true, false);
    expect(maxRelDiff(c, ref)).toBeLessThan(1e-5);
    expect(bits(big.subarray(m * n))).toEqual(bits(tail));
  });

  it('the same (m, n, k) gives the same bytes every call, whatever ran in between', () => {
    const [m, n, k] = [37, 45, 300];
    const a = randArray(rng, m * k);
    const b = randArray(rng, k * n);
    const first = new Float32Array(m * n);
    sgemm(m, n, k, a, b, first, true, false, false);
    // A larger problem grows the memory and reuses the regions in between.
    sgemm(300, 300, 300, randArray(rng, 90000), randArray(rng, 90000), new Float32Array(90000), false, false, false);
    const again = new Float32Array(m * n);
    sgemm(m, n, k, a, b, again, true, false, false);
    expect(bits(again)).toEqual(bits(first));
  });
});

describe('WebAssembly convolutions against the direct reference', () => {
  const rng = createRng(32);
  for (const [title, d] of CONV_CASES) {
    it(`${title}: forward (with and without accumulate), backward input, weight, bias`, () => {
      const cInG = d.cIn / d.groups;
      const x = randArray(rng, d.n * d.cIn * d.h * d.w);
      const w = randArray(rng, d.cOut * cInG * d.kh * d.kw);
      const b = randArray(rng, d.cOut);
      const outSize = d.n * d.cOut * d.outH * d.outW;
      const fast = new Float32Array(outSize);
      const ref = new Float32Array(outSize);
      conv2dForward(x, w, b, fast, d);
      conv2dReferenceForward(x, w, b, ref, d);
      expect(maxRelDiff(fast, ref)).toBeLessThan(1e-5);

      const base = randArray(rng, outSize);
      const acc = base.slice();
      conv2dForward(x, w, null, acc, d, true);
      const refAcc = new Float32Array(outSize);
      conv2dReferenceForward(x, w, null, refAcc, d);
      for (let i = 0; i < outSize; i++) refAcc[i] += base[i];
      expect(maxRelDiff(acc, refAcc)).toBeLessThan(1e-5);

      const g = randArray(rng, outSize);
      const gx0 = randArray(rng, x.length);
      const gx = gx0.slice();
      const gxRef = gx0.slice();
      conv2dBackwardInput(g, w, gx, d);
      conv2dReferenceBackwardInput(g, w, gxRef, d);
      expect(maxRelDiff(gx, gxRef)).toBeLessThan(1e-5);

      const gw0 = randArray(rng, w.length);
      const gw = gw0.slice();
      const gwRef = gw0.slice();
      conv2dBackwardWeight(x, g, gw, d);
      conv2dReferenceBackwardWeight(x, g, gwRef, d);
      // Sums over n·outH·outW float32 products: the widest reduction here.
      expect(maxRelDiff(gw, gwRef)).toBeLessThan(3e-5);

      const gb0 = randArray(rng, d.cOut);
      const gb = gb0.slice();
      const gbJs = gb0.slice();
      conv2dBackwardBias(g, gb, d.n, d.cOut, d.outH * d.outW);
      onJs(() => conv2dBackwardBias(g, gbJs, d.n, d.cOut, d.outH * d.outW));
      expect(maxRelDiff(gb, gbJs)).toBeLessThan(1e-6);
    });
  }

  it('strided convolutions run on the column-expanded kernels (the input gradient where no two taps of a panel write the same floats)', () => {
    for (const [title, d] of CONV_CASES.filter(([, c]) => c.strideH !== 1 || c.strideW !== 1)) {
      const cInG = d.cIn / d.groups;
      const x = randArray(rng, d.n * d.cIn * d.h * d.w);
      const w = randArray(rng, d.cOut * cInG * d.kh * d.kw);
      const b = randArray(rng, d.cOut);
      const g = randArray(rng, d.n * d.cOut * d.outH * d.outW);
      const out = new Float32Array(g.length);
      const ref = new Float32Array(g.length);
      expect(conv2dForwardWasm(x, w, b, out, d, false)).toBe(true);
      conv2dReferenceForward(x, w, b, ref, d);
      expect(maxRelDiff(out, ref)).toBeLessThan(1e-5);
      const gw = new Float32Array(w.length);
      const gwRef = new Float32Array(w.length);
      expect(conv2dBackwardWeightWasm(x, g, gw, d)).toBe(true);
      conv2dReferenceBackwardWeight(x, g, gwRef, d);
      expect(maxRelDiff(gw, gwRef)).toBeLessThan(3e-5);
      const gx0 = randArray(rng, x.length);
      const gx = gx0.slice();
      const gxRef = gx0.slice();
      expect(conv2dBackwardInputWasm(g, w, gx, d), title).toBe(!title.includes('im2col input gradient'));
      conv2dReferenceBackwardInput(g, w, gxRef, d);
      // Untouched (the im2col path is the caller's) or the input gradient added on.
      expect(maxRelDiff(gx, title.includes('im2col') ? gx0 : gxRef)).toBeLessThan(1e-5);
    }
  });

  it('repeated calls give bit-identical outputs and gradients, whatever ran in between', () => {
    const d = dims(4, 6, 14, 14, 16, [5, 5], [0, 0], 1);
    const x = randArray(rng, d.n * d.cIn * d.h * d.w);
    const w = randArray(rng, d.cOut * d.cIn * 25);
    const b = randArray(rng, d.cOut);
    const g = randArray(rng, d.n * d.cOut * d.outH * d.outW);
    const run = (): Float32Array[] => {
      const gb = new Float32Array(d.cOut);
      conv2dBackwardBias(g, gb, d.n, d.cOut, d.outH * d.outW);
      return [...convPasses(x, w, b, g, d), gb];
    };
    const first = run();
    const before = wasmMemoryBytes();
    const big = dims(64, 1, 28, 28, 6, [5, 5], [2, 2], 1);
    conv2dForward(randArray(rng, 64 * 784), randArray(rng, 150), null, new Float32Array(64 * 6 * 784), big);
    expect(wasmMemoryBytes()).toBeGreaterThanOrEqual(before);
    const again = run();
    for (let i = 0; i < first.length; i++) expect(bits(again[i])).toEqual(bits(first[i]));
  });
});

describe('ReLU, 2x2 pooling and their gradients: bit-identical to the JS loops', () => {
  const rng = createRng(33);
  // Values with ties, signed zeros, infinities and NaN, which the JS loops treat in a precise way.
  const special = [NaN, -0, 0, Infinity, -Infinity, 0.5, 0.5, -0.5];
  const tricky = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => (rng.next() < 0.1 ? special[rng.int(special.length)] : Math.round((rng.next() * 2 - 1) * 4) / 2));

  for (const n of [1, 3, 7, 4096 + 5]) {
    it(`relu forward and backward, ${n} elements`, () => {
      const x = new Tensor(tricky(n), [n], { requiresGrad: true });
      const g = tricky(n);
      const fast = relu(x);
      fast.backward(fromData(g, [n]));
      const gFast = x.grad!.data.slice();
      x.grad = null;
      const js = onJs(() => {
        const y = relu(x);
        y.backward(fromData(g, [n]));
        return y;
      });
      expect(bits(fast.data)).toEqual(bits(js.data));
      expect(bits(gFast)).toEqual(bits(x.grad!.data));
    });
  }

  for (const [planes, h, w] of [
    [3, 8, 8],
    [5, 9, 11],
    [6, 28, 28],
    [4, 2, 9],
  ])
    for (const sign of [1, -1] as const) {
      it(`${sign === 1 ? 'max' : 'min'} pooling 2x2 stride 2 on ${planes} planes of ${h}x${w}: values, argmax, gradient`, () => {
        const d: Pool2dDims = { planes, h, w, kh: 2, kw: 2, strideH: 2, strideW: 2, padH: 0, padW: 0, outH: Math.floor(h / 2), outW: Math.floor(w / 2) };
        const x = tricky(planes * h * w);
        const size = planes * d.outH * d.outW;
        const [out, arg, outJs, argJs] = [new Float32Array(size), new Int32Array(size), new Float32Array(size), new Int32Array(size)];
        maxPool2dForward(x, out, arg, d, sign);
        onJs(() => maxPool2dForward(x, outJs, argJs, d, sign));
        expect(bits(out)).toEqual(bits(outJs));
        expect(arg).toEqual(argJs);
        const g = tricky(size);
        const gx0 = tricky(x.length);
        const [gx, gxJs] = [gx0.slice(), gx0.slice()];
        maxPool2dBackward(g, arg, gx);
        onJs(() => maxPool2dBackward(g, arg, gxJs));
        expect(bits(gx)).toEqual(bits(gxJs));
      });
    }

  it('the maxPool2d op with overlapping windows (3x3 stride 2) still runs and agrees with the JS path', () => {
    const x = fromData(tricky(2 * 3 * 9 * 9), [2, 3, 9, 9]);
    const y = maxPool2d(x, { kernelSize: 3, stride: 2 });
    const yJs = onJs(() => maxPool2d(x, { kernelSize: 3, stride: 2 }));
    expect(bits(y.data)).toEqual(bits(yJs.data));
  });
});

describe('a LeNet-5 training step', () => {
  it('gives the same gradients (to float32 rounding) on the WebAssembly and the JS kernels', () => {
    const fast = lenetGradients(8);
    const js = onJs(() => lenetGradients(8));
    expect(maxRelDiff(fast, js)).toBeLessThan(1e-4);
  });

  it('gives the same gradient bytes in a worker thread as on the main thread', async () => {
    const here = lenetGradients(8);
    const worker = new Worker(new URL('./kernels-wasm-worker.mjs', import.meta.url), { workerData: { n: 8, modelSeed: 5, dataSeed: 6 } });
    try {
      const reply = await new Promise<{ backend: string; grads: Float32Array[] }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(reply.backend).toBe('wasm-simd');
      const there = new Float32Array(here.length);
      let pos = 0;
      for (const g of reply.grads) {
        there.set(g, pos);
        pos += g.length;
      }
      expect(bits(there)).toEqual(bits(here));
    } finally {
      await worker.terminate();
    }
  });
});

describe('optimizer steps on the WebAssembly kernels', () => {
  // Lengths around the vector width and the copy chunk (16384), values of mixed magnitude.
  const shapes = [[3], [4], [5, 7], [16387], [40000]];
  function makeParams(seed: number): Param[] {
    const rng = createRng(seed);
    return shapes.map((shape, i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const scale = (): number => 10 ** Math.floor(rng.next() * 8 - 6);
      return { name: `p${i}`, shape, data: Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale()), grad: new Float32Array(n) };
    });
  }
  /** Five steps with fresh gradients each; returns every parameter and state byte. */
  function run(spec: OptimizerSpec): Uint32Array[] {
    const params = makeParams(11);
    const opt = createOptimizer(spec, params);
    const rng = createRng(12);
    for (let step = 0; step < 5; step++) {
      for (const p of params) for (let i = 0; i < p.grad.length; i++) p.grad[i] = (rng.next() * 2 - 1) * 10 ** Math.floor(rng.next() * 6 - 4);
      opt.step(spec.lr * (1 + step / 10));
    }
    return [...params.map((p) => bits(p.data)), ...opt.stateArrays().map((a) => bits(a.data))];
  }
  const specs: [string, OptimizerSpec][] = [
    ['SGD momentum 0.9', { type: 'sgd', lr: 0.01, momentum: 0.9 }],
    ['Adam', { type: 'adam', lr: 0.001 }],
    ['Adam with L2 weight decay', { type: 'adam', lr: 0.003, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 }],
    ['AdamW', { type: 'adamw', lr: 0.002, weightDecay: 0.05 }],
  ];
  for (const [title, spec] of specs) {
    it(`${title}: the same bytes as the JS loops`, () => {
      const fast = run(spec);
      const js = onJs(() => run(spec));
      expect(fast.length).toBe(js.length);
      fast.forEach((a, i) => expect(a).toEqual(js[i]));
      // The updates did something.
      expect(fast[4]).not.toEqual(bits(makeParams(11)[4].data));
    });
  }
});
