// Argument checking shared by every op. Messages are built lazily so hot paths pay nothing
// for the text unless the check fails.

import type { Pair } from './types.ts';

/** A tensor shape or op geometry does not fit: the message names the op and both shapes. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

/** Throws `ShapeError(message())` unless `ok`. */
export function assert(ok: boolean, message: () => string): asserts ok {
  if (!ok) throw new ShapeError(message());
}

/** Throws `RangeError(message())` unless `ok`: for option values (probabilities, label ids). */
export function assertRange(ok: boolean, message: () => string): asserts ok {
  if (!ok) throw new RangeError(message());
}

/** `[2,3]` → `"[2, 3]"`, for messages. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Normalises a `number | [h, w]` option to `[h, w]` and checks both are integers ≥ `min`. */
export function pair(v: Pair, op: string, what: string, min: number): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  assertRange(
    Number.isInteger(p[0]) && Number.isInteger(p[1]) && p[0] >= min && p[1] >= min,
    () => `${op}: ${what} must be integers >= ${min}, got ${JSON.stringify(v)}`,
  );
  return p;
}

/** Resolves a possibly negative `dim` against `ndim`, like PyTorch. */
export function normDim(dim: number, ndim: number, op: string): number {
  const d = dim < 0 ? dim + ndim : dim;
  assertRange(Number.isInteger(d) && d >= 0 && d < ndim, () => `${op}: dim ${dim} out of range for a ${ndim}-d tensor`);
  return d;
}
