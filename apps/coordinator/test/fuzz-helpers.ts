// Shared by the fuzz and hostile-input tests: a seeded generator, byte and JSON mutators, the time
// budget, and a valid checkpoint to tamper with.
//
//   STRIDE_FUZZ_SECONDS  time budget of each fuzz test (default: a few seconds, for npm test)
//   STRIDE_FUZZ_SEED     seed of the run (default fixed, so a failure reproduces); printed on failure
import { encodeCheckpoint, normalizeJobSpec, resolveModelSpec, sha256Hex, type CheckpointMeta } from '@stride/engine';
import { paramsToBytes, type NamedArray } from '@stride/cnn';

/** Time budget of one fuzz test, ms: `STRIDE_FUZZ_SECONDS` when set, else `defaultMs`. */
export function fuzzBudgetMs(defaultMs: number): number {
  const raw = process.env.STRIDE_FUZZ_SECONDS;
  if (raw === undefined || raw === '') return defaultMs;
  const s = Number(raw);
  if (!(Number.isFinite(s) && s > 0)) throw new Error(`STRIDE_FUZZ_SECONDS must be a number of seconds > 0, got ${JSON.stringify(raw)}`);
  return s * 1000;
}

/** Seed of the run: `STRIDE_FUZZ_SEED` when set, else a fixed one. */
export function fuzzSeed(fallback = 0x5eed): number {
  const raw = process.env.STRIDE_FUZZ_SEED;
  if (raw === undefined || raw === '') return fallback;
  const s = Number(raw);
  if (!Number.isSafeInteger(s)) throw new Error(`STRIDE_FUZZ_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return s;
}

/** mulberry32: small, fast, seeded; good enough to pick mutations. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Bytes that msgpack, IDX and length headers treat specially: type tags, extension tags, all-ones lengths. */
const SPECIAL_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0x22, 0x7b, 0x5b];

/** 1-4 random edits of `base`: byte flips, special bytes, truncation, insertion, all-ones runs, splices. */
export function mutateBytes(rng: Rng, base: Uint8Array): Uint8Array {
  let out = new Uint8Array(base);
  const edits = 1 + rng.int(4);
  for (let k = 0; k < edits; k++) {
    const at = rng.int(out.length + 1);
    switch (rng.int(7)) {
      case 0:
        if (out.length) out[Math.min(at, out.length - 1)] ^= 1 << rng.int(8);
        break;
      case 1:
        if (out.length) out[Math.min(at, out.length - 1)] = rng.pick(SPECIAL_BYTES);
        break;
      case 2:
        out = out.slice(0, at);
        break;
      case 3: {
        const ins = rng.chance(0.5) ? rng.bytes(1 + rng.int(8)) : Uint8Array.from({ length: 1 + rng.int(5) }, () => rng.pick(SPECIAL_BYTES));
        const o = new Uint8Array(out.length + ins.length);
        o.set(out.subarray(0, at));
        o.set(ins, at);
        o.set(out.subarray(at), at + ins.length);
        out = o;
        break;
      }
      case 4:
        // A length or dimension field set to "gigabytes".
        for (let i = at; i < Math.min(out.length, at + 4); i++) out[i] = rng.chance(0.8) ? 0xff : 0x7f;
        break;
      case 5: {
        // Duplicate a slice (repeated fields, overlapping arrays).
        const from = rng.int(out.length + 1);
        const piece = out.slice(from, from + 1 + rng.int(16));
        const o = new Uint8Array(out.length + piece.length);
        o.set(out.subarray(0, at));
        o.set(piece, at);
        o.set(out.subarray(at), at + piece.length);
        out = o;
        break;
      }
      default:
        if (out.length) out[Math.min(at, out.length - 1)] = rng.int(256);
    }
  }
  return out;
}

/** Values that break naive validation: wrong types, edge numbers, prototype keys, deep or huge things. */
const HOSTILE_VALUES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -0,
  -1,
  0.5,
  -1e-300,
  1e308,
  2 ** 31,
  2 ** 53 + 2,
  Number.MAX_SAFE_INTEGER,
  '',
  ' ',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '0x10',
  '__proto__',
  'constructor',
  '../../etc/passwd',
  '\u0000',
  '\u202e',
  'x'.repeat(300),
  [],
  [1],
  [-1, 0, 65537],
  {},
  { __proto__x: 1 },
  { type: 'conv2d' },
  [[[[[]]]]],
];

/** Hostile JSON number literals that `JSON.stringify` cannot produce (they parse to ±Infinity or 0). */
const RAW_NUMBERS = ['1e999', '-1e999', '1e-400', '-0', '123456789012345678901234567890', '0.1e+310'];

function randomValue(rng: Rng, depth: number): unknown {
  // A copy: mutations edit values in place, and a shared object could end up inside itself.
  if (depth > 3 || rng.chance(0.6)) return structuredClone(rng.pick(HOSTILE_VALUES));
  if (rng.chance(0.5)) return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = rng.int(4); i > 0; i--) o[rng.pick(['type', 'lr', 'model', 'layers', 'input', 'x', 'steps', 'name', 'kernelSize'])] = randomValue(rng, depth + 1);
  return o;
}

/** A random JSON value of any shape. */
export function randomJson(rng: Rng): unknown {
  return randomValue(rng, 0);
}

/** Paths (key lists) to every value inside `v`. */
function paths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

/**
 * A structural mutation of a JSON value: 1-3 edits among replacing a value by a hostile one,
 * deleting a key, adding a key (prototype keys included). Returns a fresh value.
 */
export function mutateJson(rng: Rng, base: unknown): unknown {
  const root = { v: structuredClone(base) as unknown };
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const all = paths(root.v);
    const path = rng.pick(all);
    let parent: Record<string | number, unknown> = root as unknown as Record<string, unknown>;
    let key: string | number = 'v';
    for (const p of path) {
      parent = parent[key] as Record<string | number, unknown>;
      key = p;
    }
    const op = rng.int(4);
    if (op === 0 && path.length > 0 && !Array.isArray(parent)) delete parent[key];
    else if (op === 1 && parent[key] !== null && typeof parent[key] === 'object' && !Array.isArray(parent[key])) {
      const name = rng.pick(['__proto__', 'constructor', 'prototype', 'extra', 'lr', 'type', 'steps']);
      Object.defineProperty(parent[key], name, { value: randomJson(rng), enumerable: true, writable: true, configurable: true });
    } else parent[key] = randomJson(rng);
  }
  return root.v;
}

/**
 * Text of a request body: mostly a mutated valid spec, sometimes random JSON, raw hostile number
 * literals, or damaged text (truncated, with junk inserted).
 */
export function fuzzBodyText(rng: Rng, valid: unknown): string {
  const r = rng.next();
  if (r < 0.5) return JSON.stringify(mutateJson(rng, valid)) ?? 'null';
  if (r < 0.65) return JSON.stringify(randomJson(rng)) ?? 'null';
  if (r < 0.8) {
    // A number literal that JSON.stringify never writes, in place of some number.
    const text = JSON.stringify(valid);
    const nums = [...text.matchAll(/(?<=[:[,])-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
    if (nums.length === 0) return text;
    const m = rng.pick(nums);
    return text.slice(0, m.index) + rng.pick(RAW_NUMBERS) + text.slice(m.index! + m[0].length);
  }
  const text = JSON.stringify(valid);
  const bytes = mutateBytes(rng, new TextEncoder().encode(text));
  return new TextDecoder().decode(bytes);
}

/** Error names a decoder is allowed to throw: named validation errors, never TypeError/RangeError. */
export const NAMED_ERRORS = new Set(['MessageError', 'SerializationError', 'DatasetError', 'CheckpointError', 'OptimizerSpecError', 'ParamLoadError', 'JobSpecError']);

/**
 * Runs `decode` on `next()` inputs until `budgetMs` is spent; returns how many inputs were accepted,
 * how many were refused with each error name, and the inputs that threw anything else (up to 5).
 */
export function fuzzDecoder(
  budgetMs: number,
  next: () => Uint8Array | unknown,
  decode: (input: never) => unknown,
): { runs: number; accepted: number; refused: Record<string, number>; crashes: { input: string; error: string }[] } {
  const end = Date.now() + budgetMs;
  const out = { runs: 0, accepted: 0, refused: {} as Record<string, number>, crashes: [] as { input: string; error: string }[] };
  while (Date.now() < end) {
    for (let i = 0; i < 50; i++) {
      const input = next();
      out.runs++;
      try {
        decode(input as never);
        out.accepted++;
      } catch (err) {
        const name = err instanceof Error ? err.name : typeof err;
        if (NAMED_ERRORS.has(name)) out.refused[name] = (out.refused[name] ?? 0) + 1;
        else if (out.crashes.length < 5) {
          const shown = input instanceof Uint8Array ? Buffer.from(input).toString('hex').slice(0, 400) : JSON.stringify(input)?.slice(0, 400);
          out.crashes.push({ input: String(shown), error: `${name}: ${(err as Error)?.message ?? String(err)}`.slice(0, 300) });
        }
      }
    }
  }
  return out;
}

/** A small checkpoint that verifies and decodes: LeNet-5's job on MNIST, a few named arrays. */
export function validCheckpointBytes(jobId = 'job-ckpt', step = 1, metaOverride: Record<string, unknown> = {}): Uint8Array {
  const spec = normalizeJobSpec({ model: 'lenet5', dataset: 'mnist', steps: 3, batchSize: 8, shards: 2 });
  const params: NamedArray[] = [
    { name: 'conv1.weight', shape: [2, 3], data: Float32Array.from([0.5, -1, 2, 3.25, -0, 1e-3]) },
    { name: 'conv1.bias', shape: [2], data: Float32Array.from([0.1, 0.2]) },
  ];
  const meta: CheckpointMeta = {
    kind: 'stride-checkpoint',
    jobId,
    spec,
    modelSpec: resolveModelSpec(spec),
    normalization: { mean: [0.1307], std: [0.3081] },
    classNames: Array.from({ length: 10 }, (_, i) => String(i)),
    step,
    epoch: 0,
    batchIndex: step,
    totalSteps: 3,
    stepsPerEpoch: 7500,
    optimizerStepCount: step,
    evals: [],
    elapsedMs: 12,
    paramsSha256: sha256Hex(paramsToBytes(params)),
    createdAt: new Date(0).toISOString(),
    ...(metaOverride as Partial<CheckpointMeta>),
  };
  return encodeCheckpoint({
    meta,
    params,
    buffers: [],
    optimizerState: params.flatMap((p) => [
      { name: `${p.name}.exp_avg`, shape: p.shape, data: new Float32Array(p.data.length) },
      { name: `${p.name}.exp_avg_sq`, shape: p.shape, data: new Float32Array(p.data.length) },
    ]),
  });
}
