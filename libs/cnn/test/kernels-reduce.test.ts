// The reductions of shard results on the WebAssembly SIMD kernels (kernels/wasm/reduce.ts) against
// the JS loops they stand in for: the float32 sum in order, byte for byte, and Σ v² in float64,
// with its non-finite detection, under both kernel numerics (the fma module must not change them).
// Relaxed SIMD needs a V8 flag on Node 20: set here for this file's own process, as in kernels-fma.
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { createRng, fmaKernelsAvailable, kernelBackend, setKernelNumerics, sumInOrderInto, sumOfSquaresF64 } from '../src/index.ts';
import { bits, onJs, restoreKernelsAfterEach } from './kernel-helpers.ts';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
restoreKernelsAfterEach();

type Rng = ReturnType<typeof createRng>;

/** The reference: add the arrays in order into a zeroed Float32Array, then divide by count. */
function sumInOrderReference(grads: readonly Float32Array[], count: number, length: number): Float32Array {
  const out = new Float32Array(length);
  for (const g of grads) for (let i = 0; i < length; i++) out[i] += g[i];
  for (let i = 0; i < length; i++) out[i] /= count;
  return out;
}

/** The engine's JS loop (libs/engine/src/reduce.ts): four float64 sums, element i in sum i mod 4. */
function sumOfSquaresReference(a: Float32Array): number {
  const s = [0, 0, 0, 0];
  const whole = a.length - (a.length % 4);
  for (let i = 0; i < whole; i++) s[i % 4] += a[i] * a[i];
  for (let i = whole; i < a.length; i++) s[0] += a[i] * a[i];
  return s[0] + s[1] + (s[2] + s[3]);
}

/** Index of the first element whose bits differ (−1 when none): fast on long arrays, unlike toEqual. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const x = bits(a);
  const y = bits(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

const ADVERSARIAL = [-0, 0, 3e-39, -3e-39, 1e-45, 1e30, -1e30, 16777217, -16777216, 1, 1e8, -1e8, 0.1, -3.5, 3.4e38, -3.4e38, 1e-7];

/** Random values, mostly of one scale, with adversarial ones mixed in (and array s partly cancelling array s − 1). */
function makeArrays(rng: Rng, arrays: number, length: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let s = 0; s < arrays; s++) {
    const a = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      const r = rng.next();
      if (r < 0.25) a[i] = ADVERSARIAL[Math.floor(rng.next() * ADVERSARIAL.length)];
      else if (r < 0.4 && s > 0) a[i] = -out[s - 1][i] * (rng.next() < 0.5 ? 1 : 1 + 2 ** -20);
      else a[i] = (rng.next() * 2 - 1) * 10 ** Math.floor(rng.next() * 12 - 6);
    }
    out.push(a);
  }
  return out;
}

const numerics = ['exact', ...(fmaKernelsAvailable() ? ['fma' as const] : [])] as const;

it('runs on the WebAssembly SIMD kernels (otherwise nothing below tests them)', () => {
  expect(kernelBackend()).toBe('wasm-simd');
  expect(sumInOrderInto(new Float32Array(4), [new Float32Array(4)], 1)).toBe(true);
  expect(sumOfSquaresF64(new Float32Array(4))).toBe(0);
});

for (const mode of numerics) {
  describe(`numerics ${mode}`, () => {
    const withMode = <T>(fn: () => T): T => {
      setKernelNumerics(mode);
      try {
        return fn();
      } finally {
        setKernelNumerics('exact');
      }
    };

    describe('sumInOrderInto: the bytes of adding into a zeroed Float32Array in order, then dividing', () => {
      for (const length of [1, 3, 4, 5, 17, 16385, 61706]) {
        it(`length ${length}, 1 to 7 arrays, counts 1, 3, 64 and 1000`, () => {
          const rng = createRng(length);
          for (let arrays = 1; arrays <= 7; arrays++) {
            const grads = makeArrays(rng, arrays, length);
            for (const count of [1, 3, 64, 1000]) {
              const out = new Float32Array(length).fill(NaN);
              expect(withMode(() => sumInOrderInto(out, grads, count))).toBe(true);
              expect(firstDifference(out, sumInOrderReference(grads, count, length)), `${arrays} arrays, count ${count}: first differing index`).toBe(-1);
            }
          }
        });
      }

      it('−0 alone becomes +0 (0 + −0), and the order matters: 1e8 + 1 + 1 − 1e8 is 0 in float32', () => {
        const out = new Float32Array(2);
        expect(withMode(() => sumInOrderInto(out, [Float32Array.of(-0, 1e8), Float32Array.of(-0, 1), Float32Array.of(-0, 1), Float32Array.of(-0, -1e8)], 1))).toBe(true);
        expect(Object.is(out[0], 0)).toBe(true);
        expect(out[1]).toBe(0);
        expect(withMode(() => sumInOrderInto(out, [Float32Array.of(1e8, 1), Float32Array.of(-1e8, 1), Float32Array.of(1, 0), Float32Array.of(1, 0)], 1))).toBe(true);
        expect(out[0]).toBe(2);
      });

      it('subnormal sums and quotients are kept (no flush to zero)', () => {
        const out = new Float32Array(3);
        expect(withMode(() => sumInOrderInto(out, [Float32Array.of(3e-39, 1e-45, 1e-38), Float32Array.of(3e-39, 1e-45, 0)], 3))).toBe(true);
        expect(bits(out)).toEqual(bits(sumInOrderReference([Float32Array.of(3e-39, 1e-45, 1e-38), Float32Array.of(3e-39, 1e-45, 0)], 3, 3)));
        expect(out[0]).toBeGreaterThan(0);
        expect(out[0]).toBeLessThan(1.17549435e-38);
      });

      it('reads only out.length values of longer arrays', () => {
        const grads = makeArrays(createRng(5), 3, 40);
        const out = new Float32Array(21);
        expect(withMode(() => sumInOrderInto(out, grads, 3))).toBe(true);
        expect(bits(out)).toEqual(bits(sumInOrderReference(grads, 3, 21)));
      });
    });

    describe('sumOfSquaresF64', () => {
      for (const length of [0, 1, 3, 4, 5, 16384, 16387, 61706]) {
        it(`length ${length}: the JS four-lane loop's value (random values, then adversarial ones mixed in)`, () => {
          const rng = createRng(100 + length);
          // Values within a few decades of each other, so the order of the float64 sums shows in the
          // last bits (another combination of the four sums differs on about one array in five).
          const plain = Array.from({ length: 10 }, () => Float32Array.from({ length }, () => (rng.next() * 2 - 1) * 10 ** Math.floor(rng.next() * 4)));
          for (const a of [...plain, makeArrays(rng, 1, length)[0]]) {
            const got = withMode(() => sumOfSquaresF64(a));
            const want = sumOfSquaresReference(a);
            expect(Number.isFinite(got)).toBe(true);
            expect(Math.abs(got! - want)).toBeLessThanOrEqual(1e-12 * want);
            expect(got).toBe(want);
          }
        });
      }

      for (const bad of [NaN, Infinity, -Infinity]) {
        for (const length of [1, 5, 61706]) {
          for (const where of ['first', 'middle', 'last'] as const) {
            it(`${bad} at the ${where} of ${length} values makes it non-finite`, () => {
              const [a] = makeArrays(createRng(7), 1, length);
              a[where === 'first' ? 0 : where === 'last' ? length - 1 : length >> 1] = bad;
              const got = withMode(() => sumOfSquaresF64(a));
              expect(got).not.toBeUndefined();
              expect(Number.isFinite(got)).toBe(false);
              if (Number.isNaN(bad)) expect(got).toBeNaN();
            });
          }
        }
      }

      it('the largest float32 values do not overflow it', () => {
        const a = new Float32Array(61706).fill(-3.4028234663852886e38);
        expect(Number.isFinite(withMode(() => sumOfSquaresF64(a)))).toBe(true);
      });
    });
  });
}

describe('fallback', () => {
  it('without the kernels both refuse and write nothing (the caller runs its JS loop)', () => {
    const out = new Float32Array(5).fill(7);
    onJs(() => {
      expect(sumInOrderInto(out, [new Float32Array(5).fill(1)], 1)).toBe(false);
      expect(sumOfSquaresF64(new Float32Array(5))).toBeUndefined();
    });
    expect(Array.from(out)).toEqual([7, 7, 7, 7, 7]);
  });

  it('refuses a count that is not exactly a float32 (2²⁴ + 1), no arrays, and an array shorter than out', () => {
    const out = new Float32Array(4).fill(7);
    expect(sumInOrderInto(out, [new Float32Array(4)], 2 ** 24 + 1)).toBe(false);
    expect(sumInOrderInto(out, [], 1)).toBe(false);
    expect(sumInOrderInto(out, [new Float32Array(4), new Float32Array(3)], 1)).toBe(false);
    expect(Array.from(out)).toEqual([7, 7, 7, 7]);
    expect(sumInOrderInto(out, [new Float32Array(4)], 2 ** 24)).toBe(true);
  });
});
