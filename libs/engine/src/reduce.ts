// Validating shard results and reducing them into one batch gradient.
//
// Floating-point addition is not associative, so the order of the sum is part of the result:
// shard gradients are added in shard order into a float32 accumulator (each addition rounded to
// float32), then divided by the batch's sample count. Whatever order the results arrived in,
// whichever thread or machine computed them, the bytes are the same.
import { sumInOrderInto, sumOfSquaresF64 } from '@stride/cnn';
import { ShardResultError } from './errors.ts';
import type { JobContext, ShardResult, ShardTask } from './executor.ts';
import { checkTaskStats } from './tasks.ts';

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

/**
 * Σ v² over `a`, accumulated in float64 (four independent sums, so the loop is not one long chain
 * of dependent additions). It is finite exactly when every value is: a NaN or ±Infinity makes it
 * NaN or Infinity, and finite float32 values cannot overflow it (the largest, 3.4e38, squared is
 * 1.2e77). One pass gives both the finiteness check and the gradient's norm. On the WebAssembly
 * SIMD kernels when this thread has them (the same four sums, the same bytes), else the JS loop.
 */
export function sumOfSquares(a: Float32Array): number {
  return sumOfSquaresF64(a) ?? sumOfSquaresJs(a);
}

function sumOfSquaresJs(a: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = a.length;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const v0 = a[i];
    const v1 = a[i + 1];
    const v2 = a[i + 2];
    const v3 = a[i + 3];
    s0 += v0 * v0;
    s1 += v1 * v1;
    s2 += v2 * v2;
    s3 += v3 * v3;
  }
  for (; i < n; i++) s0 += a[i] * a[i];
  return s0 + s1 + (s2 + s3);
}

/**
 * Results `checkShardResult` accepted, with the task each was checked against and its gradient's
 * Σ v²: `reduceShards` and `gradientOutliers` do not scan their gradients a second time (the
 * trainer checks every result, then compares norms, then reduces).
 */
const accepted = new WeakMap<ShardResult, { task: ShardTask; sumSquares?: number }>();

/**
 * Checks one result against the task it answers. Returns the problem as a sentence, or undefined
 * when the result is acceptable.
 */
export function checkShardResult(job: JobContext, task: ShardTask, r: ShardResult | undefined): string | undefined {
  const checked: { sumSquares?: number } = {};
  const problem = findProblem(job, task, r, checked);
  if (problem === undefined) accepted.set(r!, { task, ...checked });
  return problem;
}

function findProblem(job: JobContext, task: ShardTask, r: ShardResult | undefined, checked: { sumSquares?: number }): string | undefined {
  if (!r || typeof r !== 'object') return 'no result';
  if (r.kind !== task.kind) return `kind ${r.kind}, expected ${task.kind}`;
  if (r.jobId !== task.jobId) return `job ${r.jobId}, expected ${task.jobId}`;
  if (r.step !== task.step || r.shard !== task.shard) return `answers step ${r.step} shard ${r.shard}`;
  if (r.paramsVersion !== task.paramsVersion) return `computed with parameter version ${r.paramsVersion}, expected ${task.paramsVersion}`;
  if (r.count !== task.count) return `count ${r.count}, expected ${task.count}`;
  if (typeof r.lossSum !== 'number' || !Number.isFinite(r.lossSum) || r.lossSum < 0) return `lossSum ${r.lossSum} is not a finite number >= 0`;
  if (!Number.isInteger(r.correct) || r.correct < 0 || r.correct > task.count) return `correct ${r.correct} outside [0, ${task.count}]`;
  const statsProblem = checkTaskStats(job, task, r);
  if (statsProblem) return statsProblem;
  if (task.kind === 'train') {
    if (!(r.gradient instanceof Float32Array)) return 'no gradient';
    if (r.gradient.length !== job.gradientLength) return `gradient of ${r.gradient.length} values, expected ${job.gradientLength}`;
    checked.sumSquares = typeof r.gradientSumSquares === 'number' ? r.gradientSumSquares : sumOfSquares(r.gradient);
    if (!Number.isFinite(checked.sumSquares)) return 'gradient holds non-finite values';
    if (job.bufferLength > 0) {
      if (!(r.buffers instanceof Float32Array) || r.buffers.length !== job.bufferLength) return `buffers of ${r.buffers?.length ?? 0} values, expected ${job.bufferLength}`;
      if (!Number.isFinite(sumOfSquares(r.buffers))) return 'buffers hold non-finite values';
    }
  }
  return undefined;
}

/**
 * Sums validated results in task (= shard) order. Throws `ShardResultError` on an invalid result:
 * call `checkShardResult` first to retry bad shards instead. A train batch's gradient goes into
 * `into` when given (`job.gradientLength` floats, written over), else into a new array.
 */
export function reduceShards(job: JobContext, tasks: readonly ShardTask[], results: readonly ShardResult[], into?: Float32Array): ReducedBatch {
  if (into !== undefined && into.length !== job.gradientLength) throw new RangeError(`reduceShards: into has ${into.length} floats, the job's gradient ${job.gradientLength}`);
  if (results.length !== tasks.length) throw new ShardResultError(`job ${job.jobId}: ${results.length} results for ${tasks.length} shard tasks`);
  for (let s = 0; s < tasks.length; s++) {
    if (accepted.get(results[s])?.task === tasks[s] && results[s].gradient?.length === job.gradientLength) continue;
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

  const gradient = sumInOrder(results.map((r) => r.gradient!), count, into ?? new Float32Array(job.gradientLength));

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

/**
 * (((0 + g0) + g1) + …) / count per element, every addition and the division rounded to float32.
 * One pass per shard like the plain loops, with the zero start folded into the first pass and the
 * division into the last (`Math.fround` is the float32 rounding a store would do in between).
 */
function sumInOrder(grads: readonly Float32Array[], count: number, out: Float32Array): Float32Array {
  const length = out.length;
  // The WebAssembly SIMD kernels give the same bytes (float32 additions in order from +0, then a
  // float32 division) in one pass; the JS loops below run where they are unavailable.
  if (sumInOrderInto(out, grads, count)) return out;
  const last = grads.length - 1;
  if (last < 0) return out.fill(0);
  const g0 = grads[0];
  if (last === 0) {
    for (let i = 0; i < length; i++) out[i] = (0 + g0[i]) / count;
    return out;
  }
  const gl = grads[last];
  if (last === 1) {
    // Two shards in one pass: 0 + g0 is exact, so one rounding of the sum is the same as two.
    for (let i = 0; i < length; i++) out[i] = Math.fround(0 + g0[i] + gl[i]) / count;
    return out;
  }
  if (last === 2 || last === 3) {
    // One pass for three or four shards: each partial sum rounded to float32 as a store would.
    const g1 = grads[1];
    const g2 = grads[2];
    if (last === 2) for (let i = 0; i < length; i++) out[i] = Math.fround(Math.fround(0 + g0[i] + g1[i]) + g2[i]) / count;
    else for (let i = 0; i < length; i++) out[i] = Math.fround(Math.fround(Math.fround(0 + g0[i] + g1[i]) + g2[i]) + gl[i]) / count;
    return out;
  }
  for (let i = 0; i < length; i++) out[i] = 0 + g0[i];
  for (let s = 1; s < last; s++) {
    const g = grads[s];
    for (let i = 0; i < length; i++) out[i] += g[i];
  }
  for (let i = 0; i < length; i++) out[i] = Math.fround(out[i] + gl[i]) / count;
  return out;
}

/**
 * A shard whose mean-gradient norm exceeds this many times the step's median is an outlier (a
 * gradient 10^6 too large, say). Honest shards of one step differ by far less: their samples come
 * from one distribution and the same parameters.
 */
export const OUTLIER_NORM_FACTOR = 1000;

/**
 * The per-shard norm check: the L2 norm of each train result's mean gradient (sum / count),
 * compared with the step's median norm. For an even number of shards the lower of the two middle
 * norms is the median, so with two shards the smaller one is the reference: one corrupt shard of
 * two is still caught. Returns the indices of the outliers with a sentence each (none with fewer
 * than two shards, or when the median is 0). Checks; never changes a gradient.
 */
export function gradientOutliers(results: readonly ShardResult[], factor = OUTLIER_NORM_FACTOR): { index: number; problem: string }[] {
  if (results.length < 2) return [];
  const norms = results.map((r) => {
    const g = r.gradient;
    return g ? Math.sqrt(accepted.get(r)?.sumSquares ?? sumOfSquares(g)) / r.count : 0;
  });
  const sorted = [...norms].sort((a, b) => a - b);
  const median = sorted[(sorted.length - 1) >> 1];
  if (!(median > 0)) return [];
  const out: { index: number; problem: string }[] = [];
  norms.forEach((n, index) => {
    if (n > factor * median) out.push({ index, problem: `gradient norm ${n.toExponential(3)} is ${(n / median).toExponential(2)}× the step's median ${median.toExponential(3)} (limit ${factor}×)` });
  });
  return out;
}
