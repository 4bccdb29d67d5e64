// The shard computation every executor runs, and the flat layout of model state and gradients.
//
// A shard's result depends only on (parameter version, shard samples, seed, step, shard index):
// one thread computes it start to finish, with a dropout stream derived from (seed, step, shard).
// That makes the shard the unit of determinism: whichever thread or machine computes it, and
// however often, the bytes are the same.
import { BufferArena, buildModel, createRng, deriveSeed, fromData, kernelNumerics, noGrad, setKernelNumerics, withArena, type Model, type Param, type Tensor } from '@stride/cnn';
import { normalizeInto } from '@stride/data';
import { StaleParamsError, ShardResultError } from './errors.ts';
import type { JobContext, ShardResult, ShardTask } from './executor.ts';
import './relaxed-simd.ts';
import { checkTaskTargets, taskCorrect, taskEvalStats, taskLoss } from './tasks.ts';

/** Domain tag mixed into dropout seeds so they never coincide with the shuffling seeds. */
const DROPOUT_DOMAIN = 0x64726f70; // "drop"

/** Seed of the dropout stream of (step, shard). */
export function dropoutSeed(seed: number, step: number, shard: number): number {
  return deriveSeed(seed, DROPOUT_DOMAIN, step, shard);
}

function totalLength(arrays: readonly Param[]): number {
  let n = 0;
  for (const a of arrays) n += a.data.length;
  return n;
}

/** Float32 counts of a model's flat state (parameters then buffers), gradient and buffers. */
export function stateLayout(model: Pick<Model, 'params' | 'buffers'>): { stateLength: number; gradientLength: number; bufferLength: number } {
  const gradientLength = totalLength(model.params);
  const bufferLength = totalLength(model.buffers);
  return { stateLength: gradientLength + bufferLength, gradientLength, bufferLength };
}

/** Concatenates `arrays[i][field]` into `out` (allocated when absent) in order. */
function concat(arrays: readonly Param[], field: 'data' | 'grad', out: Float32Array, offset = 0): Float32Array {
  let pos = offset;
  for (const a of arrays) {
    out.set(a[field], pos);
    pos += a[field].length;
  }
  return out;
}

/**
 * The model state as published to compute units: all parameters then all buffers, canonical order.
 * Into `out` when given (its length must be the state's), else into a new array.
 */
export function packState(model: Pick<Model, 'params' | 'buffers'>, out?: Float32Array): Float32Array {
  const { stateLength, gradientLength } = stateLayout(model);
  if (out === undefined) out = new Float32Array(stateLength);
  else if (out.length !== stateLength) throw new RangeError(`packState: the model holds ${stateLength} state values, out has ${out.length}`);
  concat(model.params, 'data', out);
  concat(model.buffers, 'data', out, gradientLength);
  return out;
}

/** Copies a packed state (see `packState`) into the model's parameters and buffers. */
export function unpackState(model: Pick<Model, 'params' | 'buffers'>, state: Float32Array): void {
  const { stateLength } = stateLayout(model);
  if (state.length !== stateLength) throw new RangeError(`unpackState: the model holds ${stateLength} state values, got ${state.length}`);
  let pos = 0;
  for (const a of [...model.params, ...model.buffers]) {
    a.data.set(state.subarray(pos, pos + a.data.length));
    pos += a.data.length;
  }
}

/** Float32 view of published state bytes (copied when unaligned). */
export function stateFromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new RangeError(`state bytes: ${bytes.byteLength} bytes is not a whole number of float32 values`);
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Float32Array(bytes.slice().buffer);
}

/** Bytes of a packed state (a view, no copy). */
export function stateToBytes(state: Float32Array): Uint8Array {
  return new Uint8Array(state.buffer, state.byteOffset, state.byteLength);
}

/**
 * Holds one model of a job and computes its shards. Built once per (compute unit, job); fed each
 * new parameter version with `setState`. Used by the LocalExecutor threads and by apps/worker.
 */
export class ShardComputer {
  readonly model: Model;
  private stateVersion = -1;
  /** The published buffers of the current version: every training shard starts from them. */
  private readonly publishedBuffers: Float32Array;
  private input = new Float32Array(0);
  private readonly inputShape: readonly [number, number, number];
  /**
   * The arrays a shard's forward and backward passes allocate, reused by the next shard of the
   * same kind (see `BufferArena`): nothing of a shard's graph outlives its `compute`.
   */
  readonly arenas = { train: new BufferArena(), eval: new BufferArena() };

  constructor(readonly job: JobContext) {
    this.model = buildModel(job.modelSpec, { seed: job.seed });
    const layout = stateLayout(this.model);
    if (layout.stateLength !== job.stateLength || layout.gradientLength !== job.gradientLength || layout.bufferLength !== job.bufferLength) {
      throw new RangeError(
        `ShardComputer: job ${job.jobId} declares state/gradient/buffer lengths ${job.stateLength}/${job.gradientLength}/${job.bufferLength}, ` +
          `its model spec builds ${layout.stateLength}/${layout.gradientLength}/${layout.bufferLength}`,
      );
    }
    this.publishedBuffers = new Float32Array(layout.bufferLength);
    this.inputShape = job.modelSpec.input;
  }

  /** The parameter version loaded, -1 before the first `setState`. */
  get version(): number {
    return this.stateVersion;
  }

  /** Loads parameter version `version` (a packed state, see `packState`). */
  setState(version: number, state: Float32Array): void {
    if (state.length !== this.job.stateLength) {
      throw new RangeError(`ShardComputer.setState: job ${this.job.jobId} version ${version} has ${state.length} values, expected ${this.job.stateLength}`);
    }
    unpackState(this.model, state);
    this.publishedBuffers.set(state.subarray(this.job.gradientLength));
    this.stateVersion = version;
  }

  /**
   * Computes one shard with the loaded version, in the job's kernel numerics (this thread's are
   * restored afterwards). `extra` is copied into the result (queueMs, workerId). A training shard's
   * gradient and buffers go into `out` when given (`stateLength` floats: the gradient, then the
   * buffers; the result's arrays are views of it), else into new arrays. Throws where the job's
   * numerics cannot run ('fma' without relaxed SIMD or without FMA in the CPU).
   */
  compute(task: ShardTask, extra: { queueMs?: number; workerId?: string } = {}, out?: Float32Array): ShardResult {
    if (out !== undefined && out.length !== this.job.stateLength) {
      throw new RangeError(`ShardComputer.compute: out has ${out.length} floats, job ${this.job.jobId} needs ${this.job.stateLength} (gradient then buffers)`);
    }
    const previous = kernelNumerics();
    setKernelNumerics(this.job.numerics ?? 'exact');
    try {
      return withArena(this.arenas[task.kind], () => this.computeNow(task, extra, out));
    } finally {
      setKernelNumerics(previous);
    }
  }

  private computeNow(task: ShardTask, extra: { queueMs?: number; workerId?: string }, out: Float32Array | undefined): ShardResult {
    const started = performance.now();
    const { job, model } = this;
    if (task.jobId !== job.jobId) throw new ShardResultError(`shard task of job ${task.jobId} sent to the computer of job ${job.jobId}`);
    if (task.paramsVersion !== this.stateVersion) {
      throw new StaleParamsError(`job ${job.jobId} step ${task.step} shard ${task.shard}: needs parameter version ${task.paramsVersion}, loaded is ${this.stateVersion}`);
    }
    const [c, h, w] = this.inputShape;
    const sampleSize = c * h * w;
    if (!Number.isInteger(task.count) || task.count < 1 || task.images.length !== task.count * sampleSize || task.labels.length !== task.count) {
      throw new ShardResultError(
        `job ${job.jobId} step ${task.step} shard ${task.shard}: ${task.count} samples of ${c}×${h}×${w} need ${task.count * sampleSize} pixels and ${task.count} labels, ` +
          `got ${task.images.length} and ${task.labels.length}`,
      );
    }
    checkTaskTargets(job, task);
    if (this.input.length !== task.images.length) this.input = new Float32Array(task.images.length);
    normalizeInto(task.images, task.count, c, h * w, job.normalization.mean, job.normalization.std, this.input);
    const x = fromData(this.input, [task.count, c, h, w]);

    let output: Tensor;
    let lossSum: number;
    let gradient: Float32Array | undefined;
    let buffers: Float32Array | undefined;
    let stats: number[] | undefined;
    // Every shard starts from the version's published buffers: a training shard before it on this
    // computer updated them (batch norm's running statistics), which an evaluation shard reads.
    if (job.bufferLength > 0) unpackBuffers(model.buffers, this.publishedBuffers);
    if (task.kind === 'train') {
      model.zeroGrad();
      output = model.forward(x, { training: true, rng: createRng(dropoutSeed(job.seed, task.step, task.shard)) });
      const loss = taskLoss(job, output, task);
      loss.backward();
      lossSum = loss.item();
      gradient = concat(model.params, 'grad', out ? out.subarray(0, job.gradientLength) : new Float32Array(job.gradientLength));
      if (job.bufferLength > 0) buffers = concat(model.buffers, 'data', out ? out.subarray(job.gradientLength) : new Float32Array(job.bufferLength));
    } else {
      [output, lossSum] = noGrad(() => {
        const out = model.forward(x, { training: false });
        return [out, taskLoss(job, out, task).item()] as const;
      });
      stats = taskEvalStats(job, output, task);
    }
    const correct = taskCorrect(job, output, task);
    return {
      kind: task.kind,
      jobId: task.jobId,
      step: task.step,
      shard: task.shard,
      paramsVersion: task.paramsVersion,
      count: task.count,
      lossSum,
      correct,
      gradient,
      buffers,
      ...(stats === undefined ? {} : { stats }),
      computeMs: performance.now() - started,
      ...extra,
    };
  }
}

function unpackBuffers(buffers: readonly Param[], values: Float32Array): void {
  let pos = 0;
  for (const b of buffers) {
    b.data.set(values.subarray(pos, pos + b.data.length));
    pos += b.data.length;
  }
}
