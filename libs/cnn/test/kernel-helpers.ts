// Shared by the tests that hold the WebAssembly kernels against the JS loops.
import { afterEach, expect } from 'vitest';
import { setWasmKernelsEnabled } from '../src/index.ts';

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
