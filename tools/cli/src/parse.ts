// Strict parsers for option values: a typo is an error naming the flag, never a silent NaN.
import { InvalidArgumentError } from 'commander';

/** An integer in [min, max]. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got "${value}"`);
    return n;
  };
}

/** A finite number > 0. */
export function positiveNumberArg(value: string): number {
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a finite number > 0, got "${value}"`);
  return n;
}

/** A finite number ≥ 0. */
export function nonNegativeNumberArg(value: string): number {
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a finite number >= 0, got "${value}"`);
  return n;
}

/** A step count or the word `epoch`. */
export function stepsOrEpochArg(value: string): number | 'epoch' {
  return value === 'epoch' ? 'epoch' : intArg(1)(value);
}

/** Milliseconds as `1h02m03s`, `4m05s` or `6.7s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}h${mm}m${ss}s` : `${m}m${ss}s`;
}
