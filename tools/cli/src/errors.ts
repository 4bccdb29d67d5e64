// How the CLI ends: exit code 2 for usage errors (bad flags, bad spec), 1 for failures.
import { CommanderError } from 'commander';

/** A bad flag or argument: printed with a hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The exit code for an error that ends a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  const name = (err as { name?: unknown })?.name;
  if (err instanceof UsageError || name === 'JobSpecError') return EXIT_USAGE;
  return EXIT_FAILURE;
}
