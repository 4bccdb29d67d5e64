// A minimal WebAssembly binary writer: just what the SIMD kernels in ./module.ts need.
//
// The kernels are emitted from TypeScript when the library loads, not compiled by a toolchain at
// install time, so Node, worker threads, Vite and the Docker image all get the same bytes from the
// same source with no generated file and no build step. Code is written as nested expression
// trees (`Code`) in the order the stack machine wants them: `f32x4.add(get(acc), f32x4.mul(a, b))`
// is `local.get acc; a; b; f32x4.mul; f32x4.add`. Generated code is checked by the engine's
// validator when the module compiles, and the tests compare every kernel with the JS references.

/** Bytes of an instruction sequence, nested freely; flattened when the module is written. */
export type Code = number | readonly Code[];

/** Value types used by the kernels. */
export type ValType = 'i32' | 'f32' | 'f64' | 'v128';

const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Index of a local (parameters first, then declared locals). */
export type Local = number;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function flatten(code: Code, out: number[]): void {
  if (typeof code === 'number') out.push(code);
  else for (const c of code) flatten(c, out);
}

function name(s: string): number[] {
  const bytes = new TextEncoder().encode(s);
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, entries: number[][]): number[] {
  const body = [...uleb(entries.length), ...entries.flat()];
  return [id, ...uleb(body.length), ...body];
}

// --- instructions --------------------------------------------------------------------------------

/** memarg: alignment hint (log2 bytes) and constant byte offset. */
const memarg = (align: number, offset: number): number[] => [align, ...uleb(offset)];
const simd = (op: number): number[] => [0xfd, ...uleb(op)];

export const get = (l: Local): Code => [0x20, uleb(l)];
export const set = (l: Local, v: Code): Code => [v, 0x21, uleb(l)];
export const tee = (l: Local, v: Code): Code => [v, 0x22, uleb(l)];

const bin = (op: number) => (a: Code, b: Code): Code => [a, b, op];

export const i32 = {
  c: (n: number): Code => [0x41, sleb(n)],
  add: bin(0x6a),
  sub: bin(0x6b),
  mul: bin(0x6c),
  divU: bin(0x6e),
  remU: bin(0x70),
  and: bin(0x71),
  shl: bin(0x74),
  shrU: bin(0x76),
  eqz: (a: Code): Code => [a, 0x45],
  eq: bin(0x46),
  ne: bin(0x47),
  ltS: bin(0x48),
  ltU: bin(0x49),
  gtS: bin(0x4a),
  leS: bin(0x4c),
  geS: bin(0x4e),
  /** Signed minimum (no native instruction: a select). */
  minS: (a: Code, b: Code): Code => [a, b, a, b, 0x48, 0x1b],
  /** Signed maximum (a select). */
  maxS: (a: Code, b: Code): Code => [a, b, a, b, 0x4a, 0x1b],
  load: (addr: Code, offset = 0): Code => [addr, 0x28, memarg(2, offset)],
  store: (addr: Code, v: Code, offset = 0): Code => [addr, v, 0x36, memarg(2, offset)],
};

export const f32 = {
  c(x: number): Code {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    return [0x43, ...b];
  },
  add: bin(0x92),
  load: (addr: Code, offset = 0): Code => [addr, 0x2a, memarg(2, offset)],
  store: (addr: Code, v: Code, offset = 0): Code => [addr, v, 0x38, memarg(2, offset)],
};

export const v128 = {
  /** 16 bytes from `addr + offset`; the address needs no alignment. */
  load: (addr: Code, offset = 0): Code => [addr, simd(0x00), memarg(2, offset)],
  store: (addr: Code, v: Code, offset = 0): Code => [addr, v, simd(0x0b), memarg(2, offset)],
  /** One f32 from memory in all four lanes. */
  load32Splat: (addr: Code, offset = 0): Code => [addr, simd(0x09), memarg(2, offset)],
  zero: (): Code => [simd(0x0c), new Array<number>(16).fill(0)],
  /** 8 bytes from `addr + offset` into the low half, the high half zero. */
  load64Zero: (addr: Code, offset = 0): Code => [addr, simd(0x5d), memarg(3, offset)],
};

export const f32x4 = {
  splat: (v: Code): Code => [v, simd(0x13)],
  extractLane: (v: Code, lane: number): Code => [v, simd(0x1f), lane],
  add: (a: Code, b: Code): Code => [a, b, simd(0xe4)],
  mul: (a: Code, b: Code): Code => [a, b, simd(0xe6)],
  div: (a: Code, b: Code): Code => [a, b, simd(0xe7)],
  /** Lane masks: all ones where the comparison holds (false when either lane is NaN, except ne). */
  gt: (a: Code, b: Code): Code => [a, b, simd(0x44)],
  ne: (a: Code, b: Code): Code => [a, b, simd(0x42)],
  /**
   * Relaxed SIMD `f32x4.relaxed_madd`: a·b + c. Fused (one rounding) where the CPU has FMA (x86
   * with FMA3, ARM64), a multiply then an add (two roundings) elsewhere; see runtime.ts's probe.
   * Needs relaxed SIMD in the engine (Node 20: --experimental-wasm-relaxed-simd; Chrome ≥ 114).
   */
  relaxedMadd: (a: Code, b: Code, c: Code): Code => [a, b, c, simd(0x105)],
};

export const i32x4 = {
  splat: (v: Code): Code => [v, simd(0x11)],
  add: (a: Code, b: Code): Code => [a, b, simd(0xae)],
  /** Lane masks: all ones where a = b. */
  eq: (a: Code, b: Code): Code => [a, b, simd(0x37)],
  /** Four i32 lanes from constants. */
  c: (l0: number, l1: number, l2: number, l3: number): Code => {
    const b = new Uint8Array(16);
    const dv = new DataView(b.buffer);
    [l0, l1, l2, l3].forEach((l, i) => dv.setInt32(4 * i, l, true));
    return [simd(0x0c), ...b];
  },
};

export const f64x2 = {
  splat: (v: Code): Code => [v, simd(0x14)],
  /** The two low f32 lanes widened to f64. */
  promoteLow: (v: Code): Code => [v, simd(0x5f)],
  /** Both lanes rounded to f32, in the two low lanes of an f32x4 (the high two are zero). */
  demoteZero: (v: Code): Code => [v, simd(0x5e)],
  add: (a: Code, b: Code): Code => [a, b, simd(0xf0)],
  sub: (a: Code, b: Code): Code => [a, b, simd(0xf1)],
  mul: (a: Code, b: Code): Code => [a, b, simd(0xf2)],
  div: (a: Code, b: Code): Code => [a, b, simd(0xf3)],
  sqrt: (v: Code): Code => [v, simd(0xef)],
  extractLane: (v: Code, lane: number): Code => [v, simd(0x21), lane],
  /** Lane masks: all ones where a > b (false when either lane is NaN). */
  gt: (a: Code, b: Code): Code => [a, b, simd(0x4a)],
};

export const i64x2 = {
  add: (a: Code, b: Code): Code => [a, b, simd(0xce)],
  /** Each lane shifted left by the i32 `n` (mod 64). */
  shl: (a: Code, n: Code): Code => [a, n, simd(0xcb)],
};

export const f64 = {
  c(x: number): Code {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, true);
    return [0x44, ...b];
  },
  add: bin(0xa0),
  mul: bin(0xa2),
  load: (addr: Code, offset = 0): Code => [addr, 0x2b, memarg(3, offset)],
  store: (addr: Code, v: Code, offset = 0): Code => [addr, v, 0x39, memarg(3, offset)],
  promoteF32: (v: Code): Code => [v, 0xbb],
  demoteToF32: (v: Code): Code => [v, 0xb6],
};

/** Bitwise ops on whole vectors. */
export const bits = {
  and: (a: Code, b: Code): Code => [a, b, simd(0x4e)],
  /** a & ~b */
  andNot: (a: Code, b: Code): Code => [a, b, simd(0x4f)],
  or: (a: Code, b: Code): Code => [a, b, simd(0x50)],
  /** Lanes of `a` where `mask` bits are set, of `b` elsewhere. */
  select: (a: Code, b: Code, mask: Code): Code => [a, b, mask, simd(0x52)],
  /** Bytes of the 32-byte concatenation a‖b picked by the 16 constant `lanes` (0–31). */
  shuffle: (a: Code, b: Code, lanes: readonly number[]): Code => [a, b, simd(0x0d), ...lanes],
};

// --- control -------------------------------------------------------------------------------------

/**
 * `do { body } while (cond)`: the body runs at least once. `cond` is evaluated after the body.
 * Branch depths inside `body` are relative to this loop (depth 0 = next iteration).
 */
export const doWhile = (body: Code, cond: Code): Code => [0x03, 0x40, body, cond, 0x0d, 0, 0x0b];

/**
 * `for (i = from; i < to; i += step) body` with signed compares; `body` may be skipped entirely.
 * `body` must not branch out of the loop itself.
 */
export function forRange(i: Local, from: Code, to: Code, step: Code, body: Code): Code {
  return [set(i, from), 0x02, 0x40, i32.geS(get(i), to), 0x0d, 0, doWhile([body, set(i, i32.add(get(i), step))], i32.ltS(get(i), to)), 0x0b];
}

/** `if (cond) then else otherwise`. */
export const ifThen = (cond: Code, then: Code, otherwise?: Code): Code => [cond, 0x04, 0x40, then, otherwise === undefined ? [] : [0x05, otherwise], 0x0b];

export const call = (fn: number, ...args: Code[]): Code => [args, 0x10, uleb(fn)];

/** memory.fill(dst, byteValue, byteCount). */
export const memoryFill = (dst: Code, value: Code, bytes: Code): Code => [dst, value, bytes, 0xfc, 11, 0];

// --- module --------------------------------------------------------------------------------------

interface FuncDef {
  name: string | null;
  type: number;
  locals: ValType[];
  body: Code;
}

/** Declares a function's parameters and locals; `body` is set by `ModuleWriter.func`. */
export class FuncScope {
  readonly params: Local[];
  readonly locals: ValType[] = [];
  private readonly paramCount: number;

  constructor(paramTypes: readonly ValType[]) {
    this.params = paramTypes.map((_, i) => i);
    this.paramCount = paramTypes.length;
  }

  /** A new local of `type` (zero-initialised on entry, as WebAssembly does). */
  local(type: ValType): Local {
    this.locals.push(type);
    return this.paramCount + this.locals.length - 1;
  }

  /** `n` new locals of `type`. */
  localsOf(type: ValType, n: number): Local[] {
    return Array.from({ length: n }, () => this.local(type));
  }
}

/** Collects functions and writes a module importing its memory as `env.memory`. */
export class ModuleWriter {
  private readonly types: string[] = [];
  private readonly funcs: FuncDef[] = [];

  /**
   * Adds a function and returns its index (callable by later functions). `name` exports it;
   * null keeps it internal.
   */
  func(name: string | null, params: readonly ValType[], results: readonly ValType[], build: (p: Local[], f: FuncScope) => Code): number {
    const sig = `${params.join(',')}->${results.join(',')}`;
    let type = this.types.indexOf(sig);
    if (type < 0) type = this.types.push(sig) - 1;
    const scope = new FuncScope(params);
    const body = build(scope.params, scope);
    this.funcs.push({ name, type, locals: scope.locals, body });
    return this.funcs.length - 1;
  }

  /** The module's bytes (imports one memory of at least `minPages` 64 KiB pages). */
  bytes(minPages = 1): Uint8Array<ArrayBuffer> {
    const types = this.types.map((sig) => {
      const [p, r] = sig.split('->').map((s) => (s === '' ? [] : (s.split(',') as ValType[])));
      return [0x60, ...uleb(p.length), ...p.map((t) => VALTYPE[t]), ...uleb(r.length), ...r.map((t) => VALTYPE[t])];
    });
    const imports = [[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(minPages)]];
    const funcs = this.funcs.map((f) => uleb(f.type));
    const exports = this.funcs.flatMap((f, i) => (f.name === null ? [] : [[...name(f.name), 0x00, ...uleb(i)]]));
    const codes = this.funcs.map((f) => {
      const body: number[] = [];
      // Runs of equal types compress into one (count, type) entry.
      const groups: number[][] = [];
      for (const t of f.locals) {
        const last = groups[groups.length - 1];
        if (last && last[1] === VALTYPE[t]) last[0]++;
        else groups.push([1, VALTYPE[t]]);
      }
      body.push(...uleb(groups.length));
      for (const [count, t] of groups) body.push(...uleb(count), t);
      flatten(f.body, body);
      body.push(0x0b);
      return [...uleb(body.length), ...body];
    });
    const out = [
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      ...section(1, types),
      ...section(2, imports),
      ...section(3, funcs),
      ...section(7, exports),
      ...section(10, codes),
    ];
    return Uint8Array.from(out);
  }
}
