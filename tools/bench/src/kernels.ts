// GEMM and convolution kernels in GFLOP/s per core, WebAssembly SIMD against the JS kernels,
// through @stride/cnn's public kernel entry points (the ones the ops call).
import v8 from 'node:v8';
import { type Conv2dDims, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward, convOutSize, createRng, fmaKernelSupport, setKernelNumerics, setWasmKernelsEnabled, sgemm } from '@stride/cnn';
import { median, ratePerCpuSecond } from './stats.ts';

export interface KernelFigure {
  name: string;
  /** Useful floating-point operations of one call (2 per multiply-add). */
  flop: number;
  wasmGflops: number;
  jsGflops: number;
  /** wasmGflops as a percentage of one core's fp32 peak. */
  pctOfPeak: number;
}

function rand(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

function measure(name: string, flop: number, fn: () => void, ms: number, peak: number): KernelFigure {
  const gflops = (): number => ratePerCpuSecond(fn, flop, ms) / 1e9;
  const wasmGflops = gflops();
  setWasmKernelsEnabled(false);
  let jsGflops: number;
  try {
    jsGflops = gflops();
  } finally {
    setWasmKernelsEnabled(true);
  }
  return { name, flop, wasmGflops, jsGflops, pctOfPeak: (100 * wasmGflops) / peak };
}

/** GEMM shapes: LeNet-5's linear layers at batch 64 (forward, input and weight gradients), conv-sized ones, and 512³. */
const GEMMS: [string, number, number, number, boolean, boolean][] = [
  ['gemm 512x512x512', 512, 512, 512, false, false],
  ['gemm fc1 fwd 64x120x400 (B^T)', 64, 120, 400, false, true],
  ['gemm fc1 dX 64x400x120', 64, 400, 120, false, false],
  ['gemm fc1 dW 120x400x64 (A^T)', 120, 400, 64, true, false],
  ['gemm conv2-as-gemm 16x100x150', 16, 100, 150, false, false],
];

/** LeNet-5's convolutions at batch 64. */
const CONVS: [string, number, number, number, number][] = [
  // name, cIn, h (= w), cOut, padding; 5×5 kernels, stride 1
  ['conv1 1->6 28x28 pad 2', 1, 28, 6, 2],
  ['conv2 6->16 14x14', 6, 14, 16, 0],
];

/** Every benchmarked kernel call: name, useful flop, the call. */
function kernelCases(): [string, number, () => void][] {
  const out: [string, number, () => void][] = [];
  for (const [name, m, n, k, transA, transB] of GEMMS) {
    const a = rand(m * k, 1);
    const b = rand(k * n, 2);
    const c = new Float32Array(m * n);
    out.push([name, 2 * m * n * k, () => sgemm(m, n, k, a, b, c, transA, transB, false)]);
  }
  const batch = 64;
  for (const [name, cIn, h, cOut, pad] of CONVS) {
    const o = convOutSize(h, 5, 1, pad, 1);
    const d: Conv2dDims = { n: batch, cIn, h, w: h, cOut, kh: 5, kw: 5, strideH: 1, strideW: 1, padH: pad, padW: pad, dilH: 1, dilW: 1, groups: 1, outH: o, outW: o };
    const x = rand(batch * cIn * h * h, 3);
    const w = rand(cOut * cIn * 25, 4);
    const bias = rand(cOut, 5);
    const y = new Float32Array(batch * cOut * o * o);
    const g = rand(y.length, 6);
    const gx = new Float32Array(x.length);
    const gw = new Float32Array(w.length);
    const flop = 2 * batch * cOut * o * o * cIn * 25;
    out.push([`${name} forward`, flop, () => conv2dForward(x, w, bias, y, d)]);
    out.push([`${name} backward input`, flop, () => conv2dBackwardInput(g, w, gx, d)]);
    out.push([`${name} backward weight`, flop, () => conv2dBackwardWeight(x, g, gw, d)]);
  }
  return out;
}

/** `peak`: one core's fp32 peak (GFLOP/s), for `pctOfPeak`. */
export function benchKernels(ms: number, peak: number): KernelFigure[] {
  return kernelCases().map(([name, flop, fn]) => measure(name, flop, fn, ms, peak));
}

// --- fused multiply-add ('fma' kernel numerics) against the default ('exact') -------------------

/**
 * Turns on WebAssembly relaxed SIMD in this process (Node 20: a V8 flag; process-wide, worker
 * threads included) and says whether the 'fma' kernel numerics can run here, or why not.
 */
export function enableFmaKernels(): string | null {
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  const s = fmaKernelSupport();
  if (!s.relaxedSimd) return 'no WebAssembly relaxed SIMD (node --experimental-wasm-relaxed-simd)';
  if (!s.fused) return 'f32x4.relaxed_madd is not fused on this CPU (no FMA)';
  return null;
}

export interface FmaKernelFigure {
  name: string;
  flop: number;
  /** GFLOP/s per core of every round, exact and fma measured one after the other. */
  exactGflops: number[];
  fmaGflops: number[];
  /** fma / exact of every round, and their median. */
  ratios: number[];
  ratio: number;
}

/**
 * Each kernel in both numerics, interleaved: `rounds` rounds of exact then fma (fma first on odd
 * rounds), each a best-of-2 CPU-time rate over ~`ms` ms windows. Leaves the numerics at 'exact'.
 */
export function benchKernelsFma(ms: number, rounds: number): FmaKernelFigure[] {
  const rate = (mode: 'exact' | 'fma', fn: () => void, flop: number): number => {
    setKernelNumerics(mode);
    try {
      return ratePerCpuSecond(fn, flop, ms, 2) / 1e9;
    } finally {
      setKernelNumerics('exact');
    }
  };
  return kernelCases().map(([name, flop, fn]) => {
    const exactGflops: number[] = [];
    const fmaGflops: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) {
        exactGflops.push(rate('exact', fn, flop));
        fmaGflops.push(rate('fma', fn, flop));
      } else {
        fmaGflops.push(rate('fma', fn, flop));
        exactGflops.push(rate('exact', fn, flop));
      }
    }
    const ratios = fmaGflops.map((f, i) => f / exactGflops[i]);
    return { name, flop, exactGflops, fmaGflops, ratios, ratio: median(ratios) };
  });
}

export function formatFmaKernels(figures: readonly FmaKernelFigure[]): string[] {
  const w = Math.max(...figures.map((k) => k.name.length));
  const f = (v: number, d = 1): string => v.toFixed(d);
  return [
    `kernels, fma vs exact numerics, GFLOP/s per core (medians of ${figures[0]?.ratios.length ?? 0} interleaved rounds; per-round fma/exact ratios):`,
    ...figures.map(
      (k) => `  ${k.name.padEnd(w)}  exact ${f(median(k.exactGflops)).padStart(5)}  fma ${f(median(k.fmaGflops)).padStart(5)}  fma/exact x${f(k.ratio, 2)}  [${k.ratios.map((r) => f(r, 2)).join(' ')}]`,
    ),
  ];
}
