// Public face of @stride/cnn. Internals stay out on purpose.
export type { Param, NamedArray, Pair, LayerSpec, ModelSpec, ModelInit } from './types.ts';
export { createRng, deriveSeed } from './rng.ts';
export type { Rng } from './rng.ts';
export { setProfiler } from './profile.ts';
export type { Profiler, ProfilePhase } from './profile.ts';
export { Tensor, tensor, fromData, zeros, ones, noGrad, isGradEnabled } from './tensor.ts';
export type { TensorOptions } from './tensor.ts';
// Reuse of a training step's arrays by the next step (the engine's shard computation).
export { BufferArena, withArena } from './arena.ts';
export type { ArenaStats } from './arena.ts';
export { ShapeError } from './assert.ts';
export * from './ops/index.ts';
export * from './model/index.ts';
export { encodeNamedArrays, decodeNamedArrays, paramsToBytes, SerializationError } from './serialize.ts';
export * from './optim/index.ts';
export * from './zoo/index.ts';
// Low-level kernels on flat arrays (benchmarks, custom layers) and the WebAssembly SIMD backend switch.
export { sgemm } from './kernels/gemm.ts';
export { conv2dForward, conv2dBackwardInput, conv2dBackwardWeight, convOutSize } from './kernels/conv.ts';
export type { Conv2dDims } from './kernels/conv.ts';
export { fmaKernelSupport, fmaKernelsAvailable, initWasmKernels, kernelBackend, kernelNumerics, setKernelNumerics, setWasmKernelsEnabled } from './kernels/wasm/runtime.ts';
export type { FmaSupport, KernelNumerics } from './kernels/wasm/runtime.ts';
// Float32 sum in order and float64 Σ v² on the WebAssembly SIMD kernels (the engine's shard-gradient reduction).
export { sumInOrderInto, sumOfSquaresF64 } from './kernels/wasm/reduce.ts';
export * from './vision/index.ts';
