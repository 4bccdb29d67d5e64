// Loads the WebAssembly SIMD kernels and owns their memory.
//
// One instance and one linear memory per JS thread (module state: every worker_thread and every
// browser worker loads its own). Node compiles the module synchronously on first use. A browser
// main thread may refuse to compile a module this size synchronously: there `initWasmKernels()`
// compiles it asynchronously and the JS kernels run until it resolves. Where WebAssembly SIMD is
// missing, or `setWasmKernelsEnabled(false)` was called, the JS kernels run.
//
// Kernels copy their operands into the memory, work there and copy the result out: each call lays
// its buffers out from address BASE with `region()`, then `reserve()` grows the memory when needed.
// The memory only grows, so after the first step of a training run nothing is allocated.
//
// Numerics: 'exact' (the default) runs the module that multiplies and adds separately; 'fma'
// (`setKernelNumerics('fma')`, opt-in) runs the module whose GEMM / convolution accumulations are
// relaxed SIMD fused multiply-adds (see ./module.ts). Both instances import the same memory and
// share its layout, so switching costs nothing once both are compiled. 'fma' is refused where
// relaxed SIMD is missing (Node 20 without --experimental-wasm-relaxed-simd) and where
// `f32x4.relaxed_madd` is not fused (an x86 CPU without FMA3: its bytes would differ from every
// other machine's). Like the backend, the numerics are per thread and every compute unit of a
// training job must use the same.

import { DEFAULT_SHAPE, type KernelExports, type KernelShape, buildKernelModule } from './module.ts';
import { ModuleWriter, f32x4, get } from './asm.ts';

/** How the GEMM / convolution kernels accumulate products: 'exact' (multiply, then add) or 'fma' (fused). */
export type KernelNumerics = 'exact' | 'fma';

/** A loaded kernel module and views of its memory (refreshed when the memory grows). */
export interface WasmKernels {
  readonly fn: KernelExports;
  readonly shape: KernelShape;
  /** Float32 view of the whole memory. */
  f32: Float32Array;
  /** Int32 view of the whole memory. */
  i32: Int32Array;
}

/** First byte used by the kernels' buffers. */
const BASE = 1024;
/** Buffers start on cache lines. */
const ALIGN = 64;
/** The kernels never use more memory than this (larger problems run on the JS kernels). */
const MAX_BYTES = 1 << 30;
const PAGE = 65536;

let enabled = true;
let numerics: KernelNumerics = 'exact';
/** undefined: not tried yet; null: unavailable (no SIMD, or sync compile refused). */
let loaded: WasmKernels | null | undefined;
/** The same for the fma module (only tried once 'fma' was selected). */
let loadedFma: WasmKernels | null | undefined;
let memory: WebAssembly.Memory | null = null;
let top = BASE;

function instantiate(module: WebAssembly.Module, shape: KernelShape): WasmKernels {
  // One memory for both modules: created by the first, imported by the second.
  memory ??= new WebAssembly.Memory({ initial: 16 });
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return { fn: instance.exports as unknown as KernelExports, shape, f32: new Float32Array(memory.buffer), i32: new Int32Array(memory.buffer) };
}

function hasWebAssembly(): boolean {
  return typeof WebAssembly === 'object' && typeof WebAssembly.validate === 'function';
}

/**
 * The kernels of this thread, compiled on first use; null when they cannot run here (no
 * WebAssembly SIMD, a browser main thread before `initWasmKernels()` resolved) or are disabled.
 */
export function wasmKernels(): WasmKernels | null {
  if (!enabled) return null;
  if (numerics === 'fma') return fmaKernels();
  if (loaded === undefined) {
    loaded = null;
    if (!hasWebAssembly()) return null;
    const bytes = buildKernelModule(DEFAULT_SHAPE);
    if (!WebAssembly.validate(bytes)) return null;
    try {
      loaded = instantiate(new WebAssembly.Module(bytes), DEFAULT_SHAPE);
    } catch {
      // A browser main thread refuses to compile large modules synchronously: compile in the
      // background; the JS kernels run until it is done.
      initWasmKernels().catch(() => undefined);
      return null;
    }
  }
  return loaded;
}

/**
 * Compiles the kernels asynchronously (what a browser main thread must do before they can run)
 * and resolves true when they are active, false when this runtime has no WebAssembly SIMD.
 * Optional in Node and in workers, where the first kernel call compiles them synchronously.
 */
export async function initWasmKernels(): Promise<boolean> {
  if (numerics === 'fma') return initFmaKernels();
  if (loaded) return enabled;
  if (!hasWebAssembly()) return false;
  const bytes = buildKernelModule(DEFAULT_SHAPE);
  if (!WebAssembly.validate(bytes)) {
    loaded = null;
    return false;
  }
  const module = await WebAssembly.compile(bytes);
  loaded ??= instantiate(module, DEFAULT_SHAPE);
  return enabled;
}

/**
 * Turns the WebAssembly kernels off (the JS kernels run) or back on, for this thread. The two give
 * results that differ in the last bits (different summation order and precision), so every
 * compute unit of a training job must use the same: leave them on outside tests and benchmarks.
 */
export function setWasmKernelsEnabled(on: boolean): void {
  enabled = on;
}

/** The fma module's kernels, compiled on first use (numerics 'fma' was checked to be available). */
function fmaKernels(): WasmKernels | null {
  if (loadedFma === undefined) {
    loadedFma = null;
    try {
      loadedFma = instantiate(new WebAssembly.Module(buildKernelModule(DEFAULT_SHAPE, { fma: true })), DEFAULT_SHAPE);
    } catch {
      // A browser main thread: as for the exact module, the JS kernels run until it is compiled.
      initFmaKernels().catch(() => undefined);
      return null;
    }
  }
  return loadedFma;
}

async function initFmaKernels(): Promise<boolean> {
  if (!loadedFma) {
    const module = await WebAssembly.compile(buildKernelModule(DEFAULT_SHAPE, { fma: true }));
    loadedFma ??= instantiate(module, DEFAULT_SHAPE);
  }
  return enabled;
}

/** What this thread's engine and CPU offer for the 'fma' numerics. */
export interface FmaSupport {
  /** The engine runs WebAssembly relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd). */
  relaxedSimd: boolean;
  /** `f32x4.relaxed_madd` rounds once (a fused multiply-add); false also when relaxedSimd is false. */
  fused: boolean;
}

/** Cached once relaxed SIMD was found (a V8 flag can still turn it on later, so a miss is retried). */
let support: FmaSupport | undefined;

/**
 * Probes relaxed SIMD and whether its multiply-add is fused on this CPU: (1 + 2⁻¹³)·(1 − 2⁻¹³) − 1
 * is −2⁻²⁶ with one rounding and 0 with two (the product rounds to 1 in float32).
 */
export function fmaKernelSupport(): FmaSupport {
  if (support) return support;
  const none: FmaSupport = { relaxedSimd: false, fused: false };
  if (!hasWebAssembly()) return none;
  const mw = new ModuleWriter();
  mw.func('madd', ['f32', 'f32', 'f32'], ['f32'], ([a, b, c]) => f32x4.extractLane(f32x4.relaxedMadd(f32x4.splat(get(a)), f32x4.splat(get(b)), f32x4.splat(get(c))), 0));
  const bytes = mw.bytes();
  if (!WebAssembly.validate(bytes)) return none;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: new WebAssembly.Memory({ initial: 1 }) } });
  const madd = instance.exports.madd as (a: number, b: number, c: number) => number;
  support = { relaxedSimd: true, fused: madd(1 + 2 ** -13, 1 - 2 ** -13, -1) === -(2 ** -26) };
  return support;
}

/** True when `setKernelNumerics('fma')` would succeed on this thread. */
export function fmaKernelsAvailable(): boolean {
  const s = fmaKernelSupport();
  return s.relaxedSimd && s.fused;
}

/**
 * Selects this thread's kernel numerics: 'exact' (default; multiply, then add) or 'fma' (fused
 * multiply-add in the GEMM / convolution kernels: faster where the CPU has FMA, results differ in
 * the last bits from 'exact'). Throws for 'fma' where relaxed SIMD is missing or not fused. Only
 * the WebAssembly kernels change: with them off (`setWasmKernelsEnabled(false)`) the JS kernels run.
 */
export function setKernelNumerics(mode: KernelNumerics): void {
  if (mode !== 'exact' && mode !== 'fma') throw new RangeError(`setKernelNumerics: expected 'exact' or 'fma', got ${String(mode)}`);
  if (mode === 'fma') {
    const s = fmaKernelSupport();
    if (!s.relaxedSimd) {
      throw new Error(
        "setKernelNumerics('fma'): this runtime has no WebAssembly relaxed SIMD. On Node 20 start node with --experimental-wasm-relaxed-simd " +
          "(or call v8.setFlagsFromString('--experimental-wasm-relaxed-simd') first); Chrome ≥ 114 has it by default.",
      );
    }
    if (!s.fused) {
      throw new Error(
        "setKernelNumerics('fma'): f32x4.relaxed_madd is not fused on this CPU (no FMA instructions): its results would differ " +
          "from a machine with FMA, so the 'fma' kernels refuse to run here. Use 'exact'.",
      );
    }
  }
  numerics = mode;
}

/** This thread's kernel numerics (see `setKernelNumerics`). */
export function kernelNumerics(): KernelNumerics {
  return numerics;
}

/** Which kernels run on this thread now: 'wasm-simd' or 'js'. */
export function kernelBackend(): 'wasm-simd' | 'js' {
  return wasmKernels() === null ? 'js' : 'wasm-simd';
}

/** Starts a kernel call's buffer layout, at the first usable byte or at `at` (a `layoutTop()`). */
export function beginLayout(at = BASE): void {
  top = at;
}

/** Where the next region of the current layout starts: regions before it are kept by `beginLayout(layoutTop())`. */
export function layoutTop(): number {
  return top;
}

/** Reserves `floats` float32s (plus `slackFloats` readable beyond them); returns the byte address. */
export function region(floats: number, slackFloats = 0): number {
  const at = top;
  top += Math.ceil(((floats + slackFloats) * 4) / ALIGN) * ALIGN;
  return at;
}

/**
 * Makes the memory hold every region of the current layout; false when it would exceed the
 * kernels' limit (the caller then runs the JS kernels). Refreshes the views after growing.
 */
export function reserve(k: WasmKernels): boolean {
  if (top > MAX_BYTES) return false;
  const have = memory!.buffer.byteLength;
  if (top > have) {
    // Grow geometrically, so a slowly growing problem does not grow the memory every call.
    const want = Math.min(MAX_BYTES, Math.max(top, have * 1.5));
    memory!.grow(Math.ceil((want - have) / PAGE));
    // Both instances view the one memory: refresh both.
    for (const kern of [k, loaded, loadedFma]) {
      if (!kern) continue;
      kern.f32 = new Float32Array(memory!.buffer);
      kern.i32 = new Int32Array(memory!.buffer);
    }
  }
  return true;
}

/** Bytes of the kernels' memory on this thread (0 before it exists). */
export function wasmMemoryBytes(): number {
  return memory?.buffer.byteLength ?? 0;
}

/** Floats per chunk: four arrays of it stay in L2. */
const CHUNK = 16384;

/**
 * Runs `kernel` over equally long `arrays`, chunk by chunk, in the kernels' memory: copies each
 * chunk of every array in, calls `kernel` with the arrays' byte offsets and the chunk length, and
 * copies back the arrays flagged in `written`. False (nothing written) without the kernels.
 */
export function inChunks(arrays: readonly Float32Array[], written: readonly boolean[], kernel: (kern: WasmKernels, at: readonly number[], n: number) => void): boolean {
  const kern = wasmKernels();
  if (kern === null) return false;
  const length = arrays[0].length;
  const size = Math.min(CHUNK, length);
  beginLayout();
  const at = arrays.map(() => region(size, 4));
  if (!reserve(kern)) return false;
  const f = kern.f32;
  for (let from = 0; from < length; from += CHUNK) {
    const n = Math.min(CHUNK, length - from);
    arrays.forEach((a, i) => f.set(a.subarray(from, from + n), at[i] >> 2));
    kernel(kern, at, n);
    arrays.forEach((a, i) => {
      if (written[i]) a.set(f.subarray(at[i] >> 2, (at[i] >> 2) + n), from);
    });
  }
  return true;
}
