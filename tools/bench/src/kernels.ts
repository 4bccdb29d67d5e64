// GEMM and convolution kernels in GFLOP/s per core, WebAssembly SIMD against the JS kernels,
// through @stride/cnn's public kernel entry points (the ones the ops call).
import { type Conv2dDims, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward, convOutSize, createRng, setWasmKernelsEnabled, sgemm } from '@stride/cnn';
import { ratePerCpuSecond } from './stats.ts';

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

/** `peak`: one core's fp32 peak (GFLOP/s), for `pctOfPeak`. */
export function benchKernels(ms: number, peak: number): KernelFigure[] {
  const out: KernelFigure[] = [];
  for (const [name, m, n, k, transA, transB] of GEMMS) {
    const a = rand(m * k, 1);
    const b = rand(k * n, 2);
    const c = new Float32Array(m * n);
    out.push(measure(name, 2 * m * n * k, () => sgemm(m, n, k, a, b, c, transA, transB, false), ms, peak));
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
    out.push(measure(`${name} forward`, flop, () => conv2dForward(x, w, bias, y, d), ms, peak));
    out.push(measure(`${name} backward input`, flop, () => conv2dBackwardInput(g, w, gx, d), ms, peak));
    out.push(measure(`${name} backward weight`, flop, () => conv2dBackwardWeight(x, g, gw, d), ms, peak));
  }
  return out;
}
