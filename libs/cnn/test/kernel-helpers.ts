// Shared by the tests that hold the WebAssembly kernels against the JS loops.
import { afterEach, expect, it } from 'vitest';
import { type createRng, setWasmKernelsEnabled } from '../src/index.ts';
import { sgemmReference } from '../src/kernels/gemm.ts';

type Rng = ReturnType<typeof createRng>;

/** `n` values uniform in [−1, 1). */
export function randArray(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

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
