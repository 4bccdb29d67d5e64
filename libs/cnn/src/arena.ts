// Step arenas: the arrays one training step's ops allocate, handed out again in the next step.
//
// A training step allocates the same arrays every time (each layer's output, pooling indices,
// softmax probabilities), about 0.5 MB for a 32-image LeNet-5 shard, and drops them all once its
// gradient is out. With an arena installed (`withArena`), the ops take those arrays from it; the
// next `withArena` on the same arena takes back everything the previous one handed out and
// gives it out again, zeroed, by length. Without an arena the ops allocate, as before.
//
// The caller's promise: nothing made during one `withArena(arena, …)` (a tensor, its data, a
// backward closure) is used after the next `withArena` on that arena starts. The engine's shard
// computation keeps that promise (it returns numbers and a copied gradient); a model used
// directly (inference, tests) runs without an arena.

/** Buffers one arena keeps, in bytes (beyond it, handed-out arrays are left to the collector). */
const DEFAULT_MAX_BYTES = 256 << 20;

type Kind = 'f32' | 'i32' | 'f64';
type ArrayOf<K extends Kind> = K extends 'f32' ? Float32Array : K extends 'i32' ? Int32Array : Float64Array;

const MAKE = {
  f32: (n: number) => new Float32Array(n),
  i32: (n: number) => new Int32Array(n),
  f64: (n: number) => new Float64Array(n),
} as const;

export interface ArenaStats {
  /** Arrays handed out again (no allocation). */
  reused: number;
  /** Arrays allocated (first runs, new lengths, or beyond `maxBytes`). */
  allocated: number;
  /** Bytes of the arrays the arena owns. */
  bytes: number;
}

export class BufferArena {
  readonly stats: ArenaStats = { reused: 0, allocated: 0, bytes: 0 };
  /** Free arrays by kind and length. */
  private readonly free = { f32: new Map<number, Float32Array[]>(), i32: new Map<number, Int32Array[]>(), f64: new Map<number, Float64Array[]>() };
  /** Handed out since the last reset, by kind (no record object per array: `take` runs per op). */
  private readonly lent = { f32: [] as Float32Array[], i32: [] as Int32Array[], f64: [] as Float64Array[] };

  constructor(readonly maxBytes = DEFAULT_MAX_BYTES) {}

  /** A zeroed array of `length` elements, owned by the arena. */
  take<K extends Kind>(kind: K, length: number): ArrayOf<K> {
    const list = this.free[kind].get(length) as ArrayOf<K>[] | undefined;
    let array = list?.pop();
    if (array !== undefined) {
      this.stats.reused++;
      array.fill(0);
    } else {
      this.stats.allocated++;
      array = MAKE[kind](length) as ArrayOf<K>;
      if (this.stats.bytes + array.byteLength > this.maxBytes) return array;
      this.stats.bytes += array.byteLength;
    }
    (this.lent[kind] as ArrayOf<K>[]).push(array);
    return array;
  }

  /** Takes back every array handed out: they may be handed out again. */
  reset(): void {
    for (const kind of ['f32', 'i32', 'f64'] as const) {
      const lent = this.lent[kind] as (Float32Array | Int32Array | Float64Array)[];
      const lists = this.free[kind] as Map<number, (typeof lent)[number][]>;
      // In reverse, so that `take` (which pops) gives each array to the call that had it last time.
      for (let i = lent.length - 1; i >= 0; i--) {
        let list = lists.get(lent[i].length);
        if (list === undefined) lists.set(lent[i].length, (list = []));
        list.push(lent[i]);
      }
      lent.length = 0;
    }
  }
}

let active: BufferArena | null = null;

/**
 * Runs `fn` with `arena` supplying the ops' arrays, after taking back what the arena handed out
 * before (see the file comment for what that asks of the caller). Not reentrant for one arena.
 */
export function withArena<T>(arena: BufferArena, fn: () => T): T {
  if (active === arena) throw new Error('withArena: this arena is in use already');
  const previous = active;
  arena.reset();
  active = arena;
  try {
    return fn();
  } finally {
    active = previous;
  }
}

/** A zeroed Float32Array for an op's result: from the active arena, else new. */
export function allocF32(length: number): Float32Array {
  return active === null ? new Float32Array(length) : active.take('f32', length);
}

/** A zeroed Int32Array (pooling indices and the like): from the active arena, else new. */
export function allocI32(length: number): Int32Array {
  return active === null ? new Int32Array(length) : active.take('i32', length);
}

/** A zeroed Float64Array (per-row statistics): from the active arena, else new. */
export function allocF64(length: number): Float64Array {
  return active === null ? new Float64Array(length) : active.take('f64', length);
}
