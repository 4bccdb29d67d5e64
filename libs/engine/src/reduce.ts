// Validating shard results and reducing them into one batch gradient.
//
// Floating-point addition is not associative, so the order of the sum is part of the result:
// shard gradients are added in shard order into a float32 accumulator (each addition rounded to
// float32), then divided by the batch's sample count. Whatever order the results arrived in,
// whichever thread or machine computed them, the bytes are the same.
import { ShardResultError } from './errors.ts';
import type { JobContext, ShardResult, ShardTask } from './executor.ts';

/** A batch reduced from its shards. */
export interface ReducedBatch {
  /** Samples in the batch (sum of the shard counts). */
  readonly count: number;
  /** Sum of the shard loss sums, added in shard order (float64). */
  readonly lossSum: number;
  readonly correct: number;
  /** Train: mean gradient over the batch, canonical parameter order. */
  readonly gradient?: Float32Array;
  /** Train, models with buffers: count-weighted mean of the shard buffers. */
  readonly buffers?: Float32Array;
}

/** True when every value is finite; `v - v` is NaN exactly for NaN and ±Infinity. */
function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] - a[i] !== 0) return false;
  return true;
}

/**
 * Checks one result against the task it answers. Returns the problem as a sentence, or undefined
 * when the result is acceptable.
 */
export function checkShardResult(job: JobContext, task: ShardTask, r: ShardResult | undefined): string | undefined {
  if (!r || typeof r !== 'object') return 'no result';
  if (r.kind !== task.kind) return `kind ${r.kind}, expected ${task.kind}`;
  if (r.jobId !== task.jobId) return `job ${r.jobId}, expected ${task.jobId}`;
  if (r.step !== task.step || r.shard !== task.shard) return `answers step ${r.step} shard ${r.shard}`;
  if (r.paramsVersion !== task.paramsVersion) return `computed with parameter version ${r.paramsVersion}, expected ${task.paramsVersion}`;
  if (r.count !== task.count) return `count ${r.count}, expected ${task.count}`;
  if (typeof r.lossSum !== 'number' || !Number.isFinite(r.lossSum) || r.lossSum < 0) return `lossSum ${r.lossSum} is not a finite number >= 0`;
  if (!Number.isInteger(r.correct) || r.correct < 0 || r.correct > task.count) return `correct ${r.correct} outside [0, ${task.count}]`;
  if (task.kind === 'train') {
    if (!(r.gradient instanceof Float32Array)) return 'no gradient';
    if (r.gradient.length !== job.gradientLength) return `gradient of ${r.gradient.length} values, expected ${job.gradientLength}`;
    if (!allFinite(r.gradient)) return 'gradient holds non-finite values';
    if (job.bufferLength > 0) {
      if (!(r.buffers instanceof Float32Array) || r.buffers.length !== job.bufferLength) return `buffers of ${r.buffers?.length ?? 0} values, expected ${job.bufferLength}`;
      if (!allFinite(r.buffers)) return 'buffers hold non-finite values';
    }
  }
  return undefined;
}

/**
 * Sums validated results in task (= shard) order. Throws `ShardResultError` on an invalid result:
 * call `checkShardResult` first to retry bad shards instead.
 */
export function reduceShards(job: JobContext, tasks: readonly ShardTask[], results: readonly ShardResult[]): ReducedBatch {
  if (results.length !== tasks.length) throw new ShardResultError(`job ${job.jobId}: ${results.length} results for ${tasks.length} shard tasks`);
  for (let s = 0; s < tasks.length; s++) {
    const problem = checkShardResult(job, tasks[s], results[s]);
    if (problem) throw new ShardResultError(`job ${job.jobId} step ${tasks[s].step} shard ${tasks[s].shard}: ${problem}`);
  }
  let count = 0;
  let lossSum = 0;
  let correct = 0;
  for (const r of results) {
    count += r.count;
    lossSum += r.lossSum;
    correct += r.correct;
  }
  const train = tasks.length > 0 && tasks[0].kind === 'train';
  if (!train) return { count, lossSum, correct };

  const gradient = new Float32Array(job.gradientLength);
  for (const r of results) {
    const g = r.gradient!;
    for (let i = 0; i < gradient.length; i++) gradient[i] += g[i];
  }
  for (let i = 0; i < gradient.length; i++) gradient[i] /= count;

  let buffers: Float32Array | undefined;
  if (job.bufferLength > 0) {
    // Running statistics: each shard updated them from the same published values; the batch's
    // update is their count-weighted mean, accumulated in float64 in shard order.
    const acc = new Float64Array(job.bufferLength);
    for (const r of results) {
      const b = r.buffers!;
      for (let i = 0; i < acc.length; i++) acc[i] += r.count * b[i];
    }
    buffers = new Float32Array(job.bufferLength);
    for (let i = 0; i < acc.length; i++) buffers[i] = acc[i] / count;
  }
  return { count, lossSum, correct, gradient, buffers };
}
