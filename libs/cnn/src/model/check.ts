// Field checks for specs that arrive as untrusted JSON (model, optimizer and schedule specs).
// Every failure names the path of the offending field (`layers[3].kernelSize`) and what it got.

/** Base of the spec errors; `path` is the offending field, e.g. `layers[3].kernelSize`. */
export class SpecError extends Error {
  override name = 'SpecError';
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

/** A model spec that cannot be built: bad field, unknown layer or input, or shapes that do not fit. */
export class ModelSpecError extends SpecError {
  override name = 'ModelSpecError';
}

/** A bad optimizer or learning-rate schedule spec. */
export class OptimizerSpecError extends SpecError {
  override name = 'OptimizerSpecError';
}

type ErrorFactory = (message: string, path: string) => SpecError;

/** Short, bounded rendering of a received value for error messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (Array.isArray(v)) return `array of length ${v.length}`;
  return typeof v;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Reads fields of untrusted values; each check returns the narrowed value or throws via `fail`. */
export class FieldChecker {
  constructor(private readonly makeError: ErrorFactory) {}

  fail(path: string, message: string): never {
    throw this.makeError(`${path}: ${message}`, path);
  }

  /** A plain object whose keys are all in `allowed`. */
  object(v: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
    if (!isPlainObject(v)) this.fail(path, `expected an object, got ${describeValue(v)}`);
    for (const key of Object.keys(v)) {
      if (!allowed.includes(key)) this.fail(path === '' ? key : `${path}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, `expected a string, got ${describeValue(v)}`);
    return v;
  }

  boolean(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, `expected true or false, got ${describeValue(v)}`);
    return v;
  }

  /** A finite number within [min, max]; `exclusiveMin`/`exclusiveMax` make the bounds strict. */
  number(v: unknown, path: string, range: { min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean } = {}): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, `expected a finite number, got ${describeValue(v)}`);
    const { min, max, exclusiveMin = false, exclusiveMax = false } = range;
    const lowOk = min === undefined || (exclusiveMin ? v > min : v >= min);
    const highOk = max === undefined || (exclusiveMax ? v < max : v <= max);
    if (!lowOk || !highOk) {
      const lo = min === undefined ? '(-inf' : `${exclusiveMin ? '(' : '['}${min}`;
      const hi = max === undefined ? 'inf)' : `${max}${exclusiveMax ? ')' : ']'}`;
      this.fail(path, `must be in ${lo}, ${hi}, got ${v}`);
    }
    return v;
  }

  /** An integer within [min, max]. */
  integer(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(path, `expected an integer, got ${describeValue(v)}`);
    if (v < min || v > max) this.fail(path, `must be an integer in [${min}, ${max}], got ${v}`);
    return v;
  }

  /** An integer or a pair of integers, each within [min, max]; returns the pair. */
  pair(v: unknown, path: string, min: number, max: number): [number, number] {
    if (Array.isArray(v)) {
      if (v.length !== 2) this.fail(path, `expected an integer or a pair [h, w], got an array of length ${v.length}`);
      return [this.integer(v[0], `${path}[0]`, min, max), this.integer(v[1], `${path}[1]`, min, max)];
    }
    const n = this.integer(v, path, min, max);
    return [n, n];
  }

  /** One of the given string literals. */
  oneOf<T extends string>(v: unknown, path: string, choices: readonly T[]): T {
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      this.fail(path, `expected one of ${choices.join(', ')}, got ${describeValue(v)}`);
    }
    return v as T;
  }
}
