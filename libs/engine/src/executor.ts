// The contract between the training engine and whatever computes shards.
//
// The engine owns the model's master copy, the step plan, the reduction and the optimizer.
// An Executor only moves parameter versions and shard tasks to compute units (threads of this
// process, or workers behind BullMQ) and brings the results back. Two implementations:
//   - LocalExecutor (this lib): a pool of node:worker_threads in the same process.
//   - the BullMQ executor (@stride/queue): shard jobs over Redis to apps/worker.
// Both compute a shard with `ShardComputer` (./shard.ts), so local and distributed training give
// the same bytes.
import type { ModelSpec } from '@stride/cnn';
import type { TaskName } from '@stride/protocol';

/** The four vision tasks. */
export type { TaskName } from '@stride/protocol';

/**
 * The targets of a shard beyond its labels, per task (absent for classification):
 * - localization: `boxes`, 4 values (cx, cy, w, h, normalised to the image) per sample;
 * - detection: `boxOffsets` (count + 1 entries; the objects of sample i are `boxOffsets[i] ..
 *   boxOffsets[i+1] - 1`), `boxes` (4 per object) and `boxLabels` (class per object);
 * - segmentation: `masks`, `count × H × W` pixel classes.
 */
export interface ShardTargets {
  readonly boxes?: Float32Array;
  readonly boxLabels?: Uint8Array;
  readonly boxOffsets?: Uint32Array;
  readonly masks?: Uint8Array;
}

/**
 * What every compute unit needs to know about a job, once. Plain JSON (no typed arrays), so it can
 * travel in a queue message or a thread message as it is.
 */
export interface JobContext {
  /** Unique job id; keys caches, Redis blobs and on-disk directories. */
  readonly jobId: string;
  /** The resolved model spec (zoo names are resolved before this point). */
  readonly modelSpec: ModelSpec;
  /**
   * What the model's output means and which loss trains it (see tasks.ts): classification
   * (cross-entropy over [C] logits), localization ([C + 4]: class logits and one box), detection
   * (YOLO grid [5 + C, S, S]) or segmentation ([K, H, W] per-pixel logits).
   */
  readonly task: TaskName;
  /**
   * Classes of the task (localization / detection: object classes; segmentation: pixel classes,
   * background included). Required for every task but classification, where the output size says it.
   */
  readonly numClasses?: number;
  /**
   * Input normalisation, per channel: `x = (pixel / 255 - mean[c]) / std[c]`.
   * Arrays have one entry per input channel.
   */
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
  /** The job seed; dropout masks of (step, shard) derive from it. */
  readonly seed: number;
  /** 'fma': the kernels accumulate with fused multiply-adds (see `JobSpec.numerics`); absent: 'exact'. */
  readonly numerics?: 'fma';
  /** Float32 count of the published state (parameters then buffers); checks published bytes. */
  readonly stateLength: number;
  /** Float32 count of a shard gradient (all parameters, canonical order); checks results. */
  readonly gradientLength: number;
  /** Float32 count of the buffers (e.g. batch-norm running statistics); 0 for most models. */
  readonly bufferLength: number;
}

interface ShardTaskBase {
  readonly jobId: string;
  /**
   * Train: the 0-based step index t. Eval: the number of optimizer steps applied so far (the
   * evaluation of the parameters after step t-1 has `step = t`).
   */
  readonly step: number;
  /** 0-based shard index inside the step; results are reduced in this order. */
  readonly shard: number;
  /**
   * Parameter version the shard must be computed with. Version v = the parameters after v
   * optimizer steps, so train step t uses version t and an evaluation at `step = t` uses version t.
   */
  readonly paramsVersion: number;
  /** Number of samples in this shard (≥ 1). */
  readonly count: number;
  /** uint8 pixels, `count × C × H × W`, sample-major, the dataset's raw bytes. */
  readonly images: Uint8Array;
  /** One class index per sample, `count` bytes (detection / segmentation: the first object's class, unused by the loss). */
  readonly labels: Uint8Array;
  /** The task's targets (see `ShardTargets`); absent for classification. */
  readonly targets?: ShardTargets;
}

/** Compute the shard's loss, accuracy counts and gradient SUM (not mean) over its samples. */
export interface TrainShardTask extends ShardTaskBase {
  readonly kind: 'train';
}

/** Compute the shard's loss and accuracy counts in inference mode; no gradient. */
export interface EvalShardTask extends ShardTaskBase {
  readonly kind: 'eval';
}

export type ShardTask = TrainShardTask | EvalShardTask;

/** What one computed shard sends back. Everything the reduction needs, nothing else. */
export interface ShardResult {
  readonly kind: 'train' | 'eval';
  readonly jobId: string;
  readonly step: number;
  readonly shard: number;
  /** The parameter version actually used; the engine rejects a result computed with another one. */
  readonly paramsVersion: number;
  /** Samples computed; must equal the task's count. */
  readonly count: number;
  /** Sum over the shard of the per-sample cross-entropy loss (float64). */
  readonly lossSum: number;
  /** Samples whose argmax equals the label (localization: whose class is right; detection / segmentation: 0). */
  readonly correct: number;
  /**
   * Eval of localization, detection and segmentation only: the task's statistics, summed or
   * listed so the engine can reduce them over shards (layouts in tasks.ts): localization
   * [iouSum, classCorrect, locCorrect]; segmentation the K×K confusion matrix; detection 7 numbers
   * per detection [image in shard, class, score, cx, cy, w, h].
   */
  readonly stats?: readonly number[];
  /**
   * Train only: the SUM over the shard's samples of the loss gradient, all parameters concatenated
   * in the model's canonical parameter order, `JobContext.gradientLength` floats.
   */
  readonly gradient?: Float32Array;
  /**
   * Σ v² of `gradient` in float64, as the engine computes it (`sumOfSquares`), when the executor
   * has already scanned the gradient it received (the BullmqExecutor's finiteness check; never a
   * value a remote worker sent): the engine's finiteness and norm checks use it instead of a second
   * pass over the gradient.
   */
  readonly gradientSumSquares?: number;
  /**
   * Train only, models with buffers only: the buffer values after this shard's training-mode
   * forward pass, starting from the published buffers. The engine averages them weighted by count.
   */
  readonly buffers?: Float32Array;
  /** Time spent computing the shard (ms), measured by whoever computed it. */
  readonly computeMs: number;
  /** Time the task waited before compute started (ms), when the executor knows it. */
  readonly queueMs?: number;
  /** Who computed it (thread index, worker host:pid...), for metrics and debugging. */
  readonly workerId?: string;
  /** Where the shard's time went, when the executor measures it (benchmarks' step breakdown). */
  readonly timing?: ShardTiming;
}

/** Wall-clock ms with sub-ms resolution, comparable across the processes and threads of one machine: the clock of `ShardTiming`. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Timeline of one shard, for the step-time breakdown. Instants are `wallClock()` milliseconds.
 * Nothing here reaches the parameters.
 */
export interface ShardTiming {
  /** The executor handed the task over (enqueued in Redis / posted to the thread pool). */
  readonly enqueuedAt?: number;
  /** The compute unit took the task. */
  readonly startedAt: number;
  /** Getting what the shard needs: parameters, input (Redis) or loading the version into the model. */
  readonly fetchMs: number;
  /** Storing the gradient (Redis); 0 when it travels with the reply. */
  readonly uploadMs: number;
  /** The compute unit was done with the task (gradient stored). */
  readonly doneAt: number;
}

/**
 * Moves parameter versions and shard tasks to compute units and brings results back.
 *
 * Protocol, per job: `publishParams(job, v, state)` once per version, then any number of
 * `runShards` calls whose tasks all carry `paramsVersion = v`; then v+1, and so on. The engine
 * never runs two `runShards` for the same job at once. `releaseJob` when the job ends.
 *
 * Requirements on implementations:
 * - Results come back in the order of `tasks` (the engine also checks (step, shard)), each task
 *   exactly once: duplicates and retries are the executor's business.
 * - A shard is computed by exactly one compute unit with `ShardComputer.compute`; its result must
 *   not depend on which unit, or on any other shard.
 * - `runShards` rejects (never resolves partially) when a task cannot be completed, and rejects
 *   promptly with the signal's reason when `signal` aborts.
 */
export interface Executor {
  /**
   * Makes parameter version `version` of a job available to whoever computes its shards.
   * `state` is the model state as produced by `packState`: float32 little-endian, all parameters
   * then all buffers, canonical order, `job.stateLength * 4` bytes. Local: shared memory for the
   * threads. BullMQ: a binary Redis key with an expiry. The caller keeps ownership of `state`.
   */
  publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void>;
  /**
   * Computes the tasks (all of one job, one parameter version) and returns one result per task, in
   * task order. The tasks' arrays are the caller's again once the call has returned (the trainer
   * gathers a later step's samples into them): an executor copies what it keeps beyond that.
   */
  runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]>;
  /**
   * Optional hint: `tasks` (the next step's) will be run soon, with a parameter version not
   * published yet. An executor that moves inputs over a network may send them now, while the
   * current step computes, instead of at the start of that step. Never throws and never changes a
   * result: whatever was not staged when `runShards` comes is sent then. The tasks' arrays stay
   * as they are until that `runShards` has returned.
   */
  prepareShards?(job: JobContext, tasks: readonly ShardTask[]): void;
  /**
   * Optional: the caller is done with these results of a `runShards` call of the job and with
   * their `gradient` and `buffers` arrays, which the executor may now write later results into
   * (the local executor does: a training step then allocates no gradient arrays). Results not
   * handed back stay the caller's.
   */
  recycle?(job: JobContext, results: readonly ShardResult[]): void;
  /** Drops everything kept for the job (cached models, published versions). Idempotent. */
  releaseJob(jobId: string): Promise<void>;
  /** Releases threads / connections. Idempotent: every call returns the same promise. */
  close(): Promise<void>;
}
