// Deterministic pseudo-random numbers from a seed, identical in Node and in the browser.

export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box–Muller). */
  normal(): number;
}

/** Mixes a seed and any number of extra integers (epoch, step, shard...) into one 32-bit seed. */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = 0x9e3779b9; // not seed-dependent: `seed ^ K` here would cancel the first mix of `seed` below
  for (const p of [seed, ...parts]) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/** mulberry32: small, fast, good enough for shuffling, initialisation and dropout masks. */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  let spare: number | undefined;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    normal: () => {
      if (spare !== undefined) {
        const v = spare;
        spare = undefined;
        return v;
      }
      let u = 0;
      while (u === 0) u = next();
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
  };
}
