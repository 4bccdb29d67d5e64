// The opt-in 'fma' kernel numerics (relaxed SIMD fused multiply-add in the GEMM / convolution
// kernels): against the JS reference kernels within float32 tolerance, bit-reproducible (repeated
// calls, another thread), refused with a clear error where relaxed SIMD is off, and leaving the
// default 'exact' numerics' bytes unchanged. Node 20 needs a V8 flag for relaxed SIMD: this file
// turns it on for its own process (vitest runs each file in a process of its own) before anything
// compiles; when that fails the first test fails and says so.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildModel,
  createOptimizer,
  createRng,
  crossEntropy,
  fmaKernelSupport,
  fmaKernelsAvailable,
  fromData,
  getZooSpec,
  kernelBackend,
  kernelNumerics,
  type Model,
  setKernelNumerics,
} from '../src/index.ts';
import { bits, CONV_CASES, GEMM_SIZES, convDims as dims, convPasses, flat, gemmAgainstTripleLoop, lenetGradients, maxRelDiff, randArray, restoreKernelsAfterEach } from './kernel-helpers.ts';
import { type Conv2dDims, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward } from '../src/kernels/conv.ts';
import { conv2dReferenceBackwardInput, conv2dReferenceBackwardWeight, conv2dReferenceForward } from '../src/kernels/conv-reference.ts';
import { sgemm } from '../src/kernels/gemm.ts';
import { buildKernelModule, DEFAULT_SHAPE } from '../src/kernels/wasm/module.ts';
import { wasmMemoryBytes } from '../src/kernels/wasm/runtime.ts';

const FLAG = '--experimental-wasm-relaxed-simd';
v8.setFlagsFromString(FLAG);


/** Runs `fn` with the kernel numerics `mode`, then goes back to 'exact'. */
function withNumerics<T>(mode: 'exact' | 'fma', fn: () => T): T {
  setKernelNumerics(mode);
  try {
    return fn();
  } finally {
    setKernelNumerics('exact');
  }
}

restoreKernelsAfterEach();
afterEach(() => setKernelNumerics('exact'));

const support = fmaKernelSupport();
const available = fmaKernelsAvailable();

it(`relaxed SIMD is on in this test process (v8.setFlagsFromString('${FLAG}')): without it every fma test below is skipped`, () => {
  expect(support.relaxedSimd, `v8.setFlagsFromString('${FLAG}') did not enable WebAssembly relaxed SIMD in this process: the fma kernels are NOT tested`).toBe(true);
  expect(kernelBackend()).toBe('wasm-simd');
  expect(kernelNumerics()).toBe('exact');
});

it('without the flag, selecting fma throws an error naming the Node flag (a child process without it)', () => {
  const index = new URL('../src/index.ts', import.meta.url).href;
  const script = `import { register } from 'tsx/esm/api'; register(); const m = await import(${JSON.stringify(index)});
    console.log(JSON.stringify({ available: m.fmaKernelsAvailable(), support: m.fmaKernelSupport() }));
    try { m.setKernelNumerics('fma'); console.log('accepted'); } catch (e) { console.log(e.message); }
    console.log(m.kernelNumerics());`;
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  expect(run.stderr).toBe('');
  const [info, message, after] = run.stdout.trim().split('\n');
  expect(JSON.parse(info)).toEqual({ available: false, support: { relaxedSimd: false, fused: false } });
  expect(message).toContain(FLAG);
  expect(message).toMatch(/relaxed SIMD/);
  expect(after).toBe('exact');
});

it('rejects an unknown numerics name', () => {
  expect(() => setKernelNumerics('fast' as 'fma')).toThrow(/'exact' or 'fma'/);
  expect(kernelNumerics()).toBe('exact');
});

it('the exact module is the one built without options; the fma module differs', () => {
  const exact = buildKernelModule(DEFAULT_SHAPE);
  expect(buildKernelModule(DEFAULT_SHAPE, { fma: false })).toEqual(exact);
  expect(buildKernelModule()).toEqual(exact);
  expect(buildKernelModule(DEFAULT_SHAPE, { fma: true })).not.toEqual(exact);
});

// On a CPU without FMA the relaxed multiply-add rounds twice: 'fma' must refuse there.
it.runIf(support.relaxedSimd && !support.fused)('this CPU has no fused multiply-add: selecting fma throws', () => {
  expect(() => setKernelNumerics('fma')).toThrow(/not fused/);
  expect(kernelNumerics()).toBe('exact');
});

/** Forward, input and weight gradients of one convolution on fixed data: every output byte. */
function convAll(d: Conv2dDims, seed: number): Float32Array[] {
  const rng = createRng(seed);
  const x = randArray(rng, d.n * d.cIn * d.h * d.w);
  const w = randArray(rng, d.cOut * (d.cIn / d.groups) * d.kh * d.kw);
  const b = randArray(rng, d.cOut);
  const g = randArray(rng, d.n * d.cOut * d.outH * d.outW);
  return convPasses(x, w, b, g, d);
}

/** C = A·B (transposes as given, plus a bias row) on fixed data. */
function gemmOnce(m: number, n: number, k: number, transA: boolean, transB: boolean, seed: number): Float32Array {
  const rng = createRng(seed);
  const c = new Float32Array(m * n);
  sgemm(m, n, k, randArray(rng, m * k), randArray(rng, k * n), c, transA, transB, false, randArray(rng, n));
  return c;
}


describe.runIf(available)('fma numerics', () => {
  it('leaves the exact numerics unchanged: exact bytes computed before fma ran are reproduced after it', () => {
    expect(kernelNumerics()).toBe('exact');
    const exactBefore = (): Float32Array[] => [gemmOnce(33, 65, 517, false, true, 1), gemmOnce(13, 17, 31, true, false, 2), ...convAll(CONV_CASES[1][1], 3), ...convAll(CONV_CASES[0][1], 4), lenetGradients(8)];
    const before = exactBefore();
    const memBefore = wasmMemoryBytes();
    const fma = withNumerics('fma', () => {
      expect(kernelNumerics()).toBe('fma');
      const out = exactBefore();
      // A larger problem grows the shared memory while the fma instance runs.
      const rng = createRng(9);
      sgemm(700, 700, 700, randArray(rng, 490000), randArray(rng, 490000), new Float32Array(490000), false, false, false);
      return out;
    });
    expect(wasmMemoryBytes()).toBeGreaterThan(memBefore);
    expect(kernelNumerics()).toBe('exact');
    const after = exactBefore();
    for (let i = 0; i < before.length; i++) expect(bits(after[i])).toEqual(bits(before[i]));
    // The fma kernels did run: every long reduction differs somewhere in the last bits.
    for (let i = 0; i < before.length; i++) expect(bits(fma[i])).not.toEqual(bits(before[i]));
  });

  it('the GEMM really fuses: c + a·b with a·b = 1 − 2⁻²⁶ (rounds to 1 in float32) gives −2⁻²⁶, not 0', () => {
    const run = (): number => {
      const c = new Float32Array([-1]);
      sgemm(1, 1, 1, new Float32Array([1 + 2 ** -13]), new Float32Array([1 - 2 ** -13]), c, false, false, true);
      return c[0];
    };
    expect(run()).toBe(0);
    // Many calls: the result must not change when V8 tiers the kernels up.
    const fused = withNumerics('fma', () => Array.from({ length: 200 }, run));
    expect(new Set(fused)).toEqual(new Set([-(2 ** -26)]));
  });

  describe('sgemm against the triple loop', () => {
    const rng = createRng(41);
    gemmAgainstTripleLoop(rng, GEMM_SIZES, (...args) => withNumerics('fma', () => sgemm(...args)));
  });

  describe('convolutions against the direct reference', () => {
    const rng = createRng(42);
    for (const [title, d] of CONV_CASES) {
      it(`${title}: forward (with and without accumulate), backward input, weight`, () => {
        const x = randArray(rng, d.n * d.cIn * d.h * d.w);
        const w = randArray(rng, d.cOut * (d.cIn / d.groups) * d.kh * d.kw);
        const b = randArray(rng, d.cOut);
        const outSize = d.n * d.cOut * d.outH * d.outW;
        const g = randArray(rng, outSize);
        const base = randArray(rng, outSize);
        const gx0 = randArray(rng, x.length);
        const gw0 = randArray(rng, w.length);
        const [out, acc, gx, gw] = [new Float32Array(outSize), base.slice(), gx0.slice(), gw0.slice()];
        withNumerics('fma', () => {
          conv2dForward(x, w, b, out, d);
          conv2dForward(x, w, null, acc, d, true);
          conv2dBackwardInput(g, w, gx, d);
          conv2dBackwardWeight(x, g, gw, d);
        });
        const ref = new Float32Array(outSize);
        conv2dReferenceForward(x, w, b, ref, d);
        expect(maxRelDiff(out, ref)).toBeLessThan(1e-5);
        const refAcc = new Float32Array(outSize);
        conv2dReferenceForward(x, w, null, refAcc, d);
        for (let i = 0; i < outSize; i++) refAcc[i] += base[i];
        expect(maxRelDiff(acc, refAcc)).toBeLessThan(1e-5);
        const gxRef = gx0.slice();
        conv2dReferenceBackwardInput(g, w, gxRef, d);
        expect(maxRelDiff(gx, gxRef)).toBeLessThan(1e-5);
        const gwRef = gw0.slice();
        conv2dReferenceBackwardWeight(x, g, gwRef, d);
        expect(maxRelDiff(gw, gwRef)).toBeLessThan(3e-5);
      });
    }
  });

  it('repeated calls give the same bytes, whatever ran in between (memory growth, exact calls)', () => {
    const run = (): Float32Array[] => [gemmOnce(37, 45, 300, true, false, 7), ...convAll(CONV_CASES[2][1], 8), ...convAll(CONV_CASES[1][1], 10)];
    const first = withNumerics('fma', run);
    const rng = createRng(11);
    const big = dims(64, 1, 28, 28, 6, [5, 5], [2, 2], 1);
    conv2dForward(randArray(rng, 64 * 784), randArray(rng, 150), null, new Float32Array(64 * 6 * 784), big);
    withNumerics('fma', () => conv2dForward(randArray(rng, 64 * 784), randArray(rng, 150), null, new Float32Array(64 * 6 * 784), big));
    const again = withNumerics('fma', run);
    for (let i = 0; i < first.length; i++) expect(bits(again[i])).toEqual(bits(first[i]));
  });

  it('a LeNet-5 step gives the same gradient bytes in a worker thread as on the main thread, and differs from exact', async () => {
    const here = withNumerics('fma', () => lenetGradients(8));
    const exact = lenetGradients(8);
    expect(maxRelDiff(here, exact)).toBeLessThan(1e-4);
    expect(bits(here)).not.toEqual(bits(exact));
    const worker = new Worker(new URL('./kernels-fma-worker.mjs', import.meta.url), { workerData: { n: 8, modelSeed: 5, dataSeed: 6, numerics: 'fma' } });
    try {
      const reply = await new Promise<{ backend: string; numerics: string; support: unknown; grads: Float32Array[] }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      // The flag set on the main thread is process-wide: the worker has relaxed SIMD too.
      expect(reply.support).toEqual({ relaxedSimd: true, fused: true });
      expect(reply.backend).toBe('wasm-simd');
      expect(reply.numerics).toBe('fma');
      expect(bits(flat(reply.grads))).toEqual(bits(here));
    } finally {
      await worker.terminate();
    }
  });

  it('LeNet-5 trains in fma: finite losses that decrease over a few SGD steps, close to the exact run', () => {
    const losses = (): number[] => {
      const model: Model = buildModel(getZooSpec('lenet5'), { seed: 12 });
      const opt = createOptimizer({ type: 'sgd', lr: 0.05, momentum: 0.9 }, model.params);
      const rng = createRng(13);
      const n = 16;
      const x = fromData(Float32Array.from({ length: n * 784 }, () => rng.next()), [n, 1, 28, 28]);
      const labels = Uint8Array.from({ length: n }, () => rng.int(10));
      const out: number[] = [];
      for (let step = 0; step < 6; step++) {
        model.zeroGrad();
        const loss = crossEntropy(model.forward(x, { training: true }), labels);
        out.push(loss.data[0]);
        loss.backward();
        opt.step(0.05);
      }
      return out;
    };
    const fma = withNumerics('fma', losses);
    const exact = losses();
    for (const l of fma) expect(Number.isFinite(l)).toBe(true);
    expect(fma[fma.length - 1]).toBeLessThan(fma[0]);
    for (let i = 0; i < fma.length; i++) expect(Math.abs(fma[i] - exact[i])).toBeLessThan(1e-3 * (1 + Math.abs(exact[i])));
  });
});
