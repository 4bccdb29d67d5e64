// Named error classes of the engine. Matched by `name` as well as `instanceof`, because errors
// cross thread and process boundaries (structured clone and JSON keep the name, not the class).

/** A job spec failed validation; `path` names the offending field (`optimizer.lr`), the message starts with it. */
export class JobSpecError extends Error {
  override readonly name = 'JobSpecError';
  constructor(
    readonly path: string,
    /** What is wrong, without the path: `expected a finite number, got NaN`. */
    readonly detail: string,
  ) {
    super(path ? `${path}: ${detail}` : detail);
  }
}

/** A checkpoint file is corrupt, truncated, of another format or does not fit the job. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message);
  }
}

/**
 * A shard result was rejected (wrong shard, stale version, wrong length, non-finite values...), or
 * a shard could not be computed at all. `reason` says why when the thrower knows it: the trainer
 * skips a step whose shards keep giving `non-finite` or `outlier` gradients, and stops the job on
 * any other reason (`poison`: the shard crashed its worker every time).
 */
export class ShardResultError extends Error {
  override readonly name = 'ShardResultError';
  constructor(
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

/**
 * Training diverged: the loss blew up, or too many steps in a row had to be skipped. The job
 * should be paused with this message as its reason (resuming repeats it unless the spec changes).
 */
export class DivergenceError extends Error {
  override readonly name = 'DivergenceError';
}

/**
 * This runner no longer holds the job's lease (another runner took it over): it must not write the
 * job's checkpoints, records or parameters any more.
 */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

/** A shard task asked for a parameter version the compute unit does not have. */
export class StaleParamsError extends Error {
  override readonly name = 'StaleParamsError';
}

/** A worker thread died or a request failed inside one: defined with the thread pool, in @stride/data. */
export { ThreadError } from '@stride/data';

/** True when `err` is an Error whose name is `name` (works across threads, where classes are lost). */
export function isNamedError(err: unknown, name: string): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === name;
}
