// The trainer: runs or resumes one job, step by step, through an Executor.
//
// Per step t (see DESIGN.md "One training step"): plan the batch and its shards, publish parameter
// version t once, run the shard tasks, validate and sum the results in shard order, divide by the
// batch size, apply the optimizer with the scheduled learning rate. Evaluate and checkpoint on the
// job's cadence. Everything that decides the parameters is a pure function of the job spec and the
// step, or is stored in the checkpoint (parameters, buffers, optimizer state), so a resumed run
// ends with the same bytes as an uninterrupted one.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildModel,
  createOptimizer,
  getZooSpec,
  learningRateAt,
  loadNamedArrays,
  paramsToBytes,
  type Model,
  type ModelSpec,
  type NamedArray,
  type Optimizer,
} from '@stride/cnn';
import { loadDataset, type Dataset } from '@stride/data';
import { sha256Hex, type Checkpoint, type CheckpointMeta } from './checkpoint-format.ts';
import { CheckpointStore, writeFileAtomic } from './checkpoint-store.ts';
import { CheckpointError, JobSpecError, ShardResultError } from './errors.ts';
import { TypedEmitter } from './events.ts';
import type { Executor, JobContext, ShardResult, ShardTask } from './executor.ts';
import { MetricsLog, type EvalMetrics, type StepMetrics } from './metrics.ts';
import { evalShardRanges, shardSamples, StepPlanner } from './plan.ts';
import { checkShardResult, reduceShards, type ReducedBatch } from './reduce.ts';
import { packState, stateLayout, stateToBytes } from './shard.ts';
import { asJobSpecError, canonicalJson, DATASET_SHAPES, normalizeJobSpec, totalStepsOf, type JobSpec, type JobSpecInput } from './spec.ts';

/** A job's lifecycle: one named state with its payload. */
export type JobState =
  | { readonly status: 'queued' }
  | { readonly status: 'running'; readonly step: number; readonly totalSteps: number }
  | { readonly status: 'paused'; readonly step: number; readonly totalSteps: number }
  | { readonly status: 'succeeded'; readonly result: TrainResult }
  | { readonly status: 'failed'; readonly step: number; readonly error: string }
  | { readonly status: 'cancelled'; readonly step: number; readonly totalSteps: number };

export type JobStatus = JobState['status'];

/** What the trainer tells its listeners. */
export interface TrainerListener {
  state(e: { readonly jobId: string; readonly state: JobState }): void;
  step(e: StepMetrics & { readonly jobId: string; readonly totalSteps: number }): void;
  eval(e: EvalMetrics & { readonly jobId: string }): void;
  checkpoint(e: { readonly jobId: string; readonly step: number; readonly file: string }): void;
  /** The shard results a step or an evaluation used, emitted just before its `step` / `eval` event. */
  shards(e: ShardsUsed): void;
  log(e: { readonly jobId: string; readonly level: 'info' | 'warn' | 'error'; readonly message: string }): void;
}

/**
 * Who computed the accepted shard results of one training step or evaluation (rejected and
 * duplicate results never appear). For accounting only: nothing here reaches the parameters.
 */
export interface ShardsUsed {
  readonly jobId: string;
  readonly kind: 'train' | 'eval';
  /** As in the step / eval metrics: train step index, or the parameter version evaluated. */
  readonly step: number;
  /** One entry per shard, in shard order: the result's `workerId` (when the executor knows it) and compute time. */
  readonly shards: readonly { readonly workerId?: string; readonly computeMs: number }[];
}

function shardsUsed(jobId: string, kind: 'train' | 'eval', step: number, results: readonly ShardResult[]): ShardsUsed {
  return { jobId, kind, step, shards: results.map((r) => ({ workerId: r.workerId, computeMs: r.computeMs })) };
}

/** How a run ended (a failure rejects `run()` instead). */
export interface TrainResult {
  readonly jobId: string;
  readonly status: 'succeeded' | 'paused' | 'cancelled';
  /** SHA-256 hex of the canonical parameter bytes at the end of the run. */
  readonly paramsSha256: string;
  /** Accuracy and loss of the last evaluation (the final one when succeeded); undefined before any. */
  readonly testAccuracy?: number;
  readonly testLoss?: number;
  /** The best evaluation of the job so far. */
  readonly best?: { readonly step: number; readonly testAccuracy: number };
  /** Optimizer steps applied, of `totalSteps`. */
  readonly steps: number;
  readonly totalSteps: number;
  /** Epochs completed (fractional). */
  readonly epochs: number;
  /** Wall time of this run and accumulated over all runs of the job, ms. */
  readonly wallMs: number;
  readonly elapsedMs: number;
  /** The step this run resumed from (0 for a fresh start). */
  readonly resumedFrom: number;
  /** The last checkpoint written or loaded. */
  readonly checkpoint?: string;
}

/** Options of a Trainer. */
export interface TrainerOptions {
  /** Computes the shards. The trainer does not close it. */
  executor: Executor;
  /** Root of Stride's data; the job lives in `<dataDir>/jobs/<jobId>/`. */
  dataDir: string;
  /** Job id: 1-128 characters of [A-Za-z0-9_.-], not starting with a dot. */
  jobId: string;
  /**
   * Stops the run at the next step boundary (a step in flight is abandoned, not half-applied),
   * writes a checkpoint and resolves with status `paused` when `signal.reason === 'pause'`,
   * `cancelled` otherwise. Default: none.
   */
  signal?: AbortSignal;
  /** Continue from the job's latest good checkpoint when there is one. false: start over, deleting the job's checkpoints and metrics. Default true. */
  resume?: boolean;
  /** Attempts per step when shard results are rejected (invalid results are re-requested). Default 3. */
  maxStepAttempts?: number;
}

/** Where a job's files live. */
export function jobPaths(dataDir: string, jobId: string): { dir: string; spec: string; metrics: string; checkpoints: string; result: string } {
  const dir = join(dataDir, 'jobs', jobId);
  return { dir, spec: join(dir, 'spec.json'), metrics: join(dir, 'metrics.jsonl'), checkpoints: join(dir, 'checkpoints'), result: join(dir, 'result.json') };
}

const JOB_ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

/** The model spec of a job: a zoo name resolved for the dataset's shape and classes. */
export function resolveModelSpec(spec: JobSpec): ModelSpec {
  if (typeof spec.model !== 'string') return spec.model;
  const { input, numClasses } = DATASET_SHAPES[spec.dataset];
  return getZooSpec(spec.model, { inChannels: input[0], height: input[1], width: input[2], numClasses });
}

/** Builds the job's model; a bad layer surfaces as a JobSpecError under `model`. */
function buildJobModel(modelSpec: ModelSpec, seed: number): Model {
  try {
    return buildModel(modelSpec, { seed });
  } catch (err) {
    asJobSpecError(err, 'model');
  }
}

/** Named views of live arrays (no copy: a checkpoint is encoded before the next update). */
function named(arrays: readonly { name: string; shape: readonly number[]; data: Float32Array }[]): NamedArray[] {
  return arrays.map((a) => ({ name: a.name, shape: a.shape, data: a.data }));
}

function stopReason(signal: AbortSignal): 'paused' | 'cancelled' {
  return signal.reason === 'pause' ? 'paused' : 'cancelled';
}

/** Everything a run needs, set up by `prepare`. */
interface Setup {
  readonly spec: JobSpec;
  readonly paths: ReturnType<typeof jobPaths>;
  readonly train: Dataset;
  readonly test: Dataset;
  readonly modelSpec: ModelSpec;
  readonly model: Model;
  readonly optimizer: Optimizer;
  readonly planner: StepPlanner;
  readonly totalSteps: number;
  readonly job: JobContext;
  readonly store: CheckpointStore;
  readonly metrics: MetricsLog;
  readonly evalTasks: (step: number) => ShardTask[];
}

/** Progress of a run, restored from a checkpoint on resume. */
interface Progress {
  /** Optimizer steps applied = the current parameter version. */
  done: number;
  evals: EvalMetrics[];
  best?: { step: number; testAccuracy: number };
  lastStep?: StepMetrics;
  elapsedBefore: number;
  /** Version last handed to `publishParams` (-1: none yet in this run). */
  published: number;
  checkpointStep: number;
  checkpointFile?: string;
}

/**
 * Runs or resumes one job. Listen with `on('step' | 'eval' | 'checkpoint' | 'state' | 'log', fn)`,
 * then `run()`. One Trainer runs once.
 */
export class Trainer extends TypedEmitter<TrainerListener> {
  readonly spec: JobSpec;
  readonly jobId: string;
  private current: JobState = { status: 'queued' };
  private started = false;

  constructor(
    spec: JobSpecInput | JobSpec,
    private readonly options: TrainerOptions,
  ) {
    super();
    this.spec = normalizeJobSpec(spec);
    if (typeof options.jobId !== 'string' || !JOB_ID_RE.test(options.jobId)) {
      throw new JobSpecError('jobId', `must be 1-128 characters of [A-Za-z0-9_.-] not starting with a dot, got ${JSON.stringify(options.jobId)}`);
    }
    this.jobId = options.jobId;
  }

  /** The job's current lifecycle state. */
  get state(): JobState {
    return this.current;
  }

  /** Runs the job to its end, or until the signal stops it. Rejects (state `failed`) on an error. */
  async run(): Promise<TrainResult> {
    if (this.started) throw new Error(`Trainer.run: job ${this.jobId} already ran; create a new Trainer`);
    this.started = true;
    const t0 = performance.now();
    let progress: Progress | undefined;
    let setup: Setup | undefined;
    try {
      setup = await this.prepare();
      progress = await this.restore(setup);
      this.setState({ status: 'running', step: progress.done, totalSteps: setup.totalSteps });
      const result = await this.loop(setup, progress, t0);
      if (result.status === 'succeeded') await writeFileAtomic(setup.paths.result, `${JSON.stringify(result, null, 2)}\n`);
      this.setState(result.status === 'succeeded' ? { status: 'succeeded', result } : { status: result.status, step: result.steps, totalSteps: result.totalSteps });
      return result;
    } catch (err) {
      this.log('error', `job failed: ${(err as Error).message}`);
      this.setState({ status: 'failed', step: progress?.done ?? 0, error: (err as Error).message });
      throw err;
    } finally {
      await setup?.metrics.close();
      if (setup) {
        await this.options.executor.releaseJob(this.jobId).catch((err: unknown) => this.log('warn', `releasing the job's executor resources failed: ${(err as Error).message}`));
      }
    }
  }

  private setState(state: JobState): void {
    this.current = state;
    this.emit('state', { jobId: this.jobId, state });
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.emit('log', { jobId: this.jobId, level, message });
  }

  protected override onHandlerError(event: keyof TrainerListener, err: unknown): void {
    if (event !== 'log') this.log('warn', `a '${String(event)}' listener threw: ${(err as Error)?.message ?? String(err)}`);
    else super.onHandlerError(event, err);
  }

  /** Loads data, builds the model, optimizer, planner and the job's directory. */
  private async prepare(): Promise<Setup> {
    const { spec, jobId } = this;
    const paths = jobPaths(this.options.dataDir, jobId);
    if (this.options.resume === false) {
      await rm(paths.checkpoints, { recursive: true, force: true });
      await rm(paths.metrics, { force: true });
      await rm(paths.result, { force: true });
    }
    await mkdir(paths.dir, { recursive: true });
    const specText = `${JSON.stringify(spec, null, 2)}\n`;
    const previous = await readFile(paths.spec, 'utf8').catch(() => undefined);
    if (previous !== undefined && this.options.resume !== false && canonicalJson(JSON.parse(previous)) !== canonicalJson(spec)) {
      throw new JobSpecError('', `job ${jobId} already exists in ${paths.dir} with another spec; use another job id or resume: false`);
    }
    await writeFileAtomic(paths.spec, specText);

    const [train, test] = await Promise.all([loadDataset(spec.dataset, 'train'), loadDataset(spec.dataset, 'test')]);
    const expected = DATASET_SHAPES[spec.dataset];
    if (train.channels !== expected.input[0] || train.height !== expected.input[1] || train.width !== expected.input[2] || train.numClasses !== expected.numClasses) {
      throw new Error(`dataset ${spec.dataset}: loaded ${train.channels}×${train.height}×${train.width} with ${train.numClasses} classes, expected ${expected.input.join('×')} with ${expected.numClasses}`);
    }
    const modelSpec = resolveModelSpec(spec);
    const model = buildJobModel(modelSpec, spec.seed);
    const optimizer = createOptimizer(spec.optimizer, model.params);
    const planner = new StepPlanner(train.count, spec.batchSize, spec.shards, spec.seed);
    const totalSteps = totalStepsOf(spec, train.count);
    const job: JobContext = {
      jobId,
      modelSpec,
      task: 'classification',
      normalization: { mean: [...train.mean], std: [...train.std] },
      seed: spec.seed,
      ...stateLayout(model),
    };
    const store = new CheckpointStore(paths.checkpoints, { keep: spec.keepCheckpoints, onWarning: (m) => this.log('warn', m) });
    const metrics = new MetricsLog(paths.metrics);

    // The test split, cut once into fixed, in-order shards; each task owns a copy of its pixels.
    const sampleSize = test.channels * test.height * test.width;
    const evalCount = spec.evalSamples > 0 ? Math.min(spec.evalSamples, test.count) : test.count;
    const evalShards = evalShardRanges(evalCount, spec.evalShards).map((r) => ({
      shard: r.shard,
      count: r.end - r.start,
      images: test.images.slice(r.start * sampleSize, r.end * sampleSize),
      labels: test.labels.slice(r.start, r.end),
    }));
    const evalTasks = (step: number): ShardTask[] => evalShards.map((s) => ({ kind: 'eval', jobId, step, paramsVersion: step, ...s }));
    return { spec, paths, train, test, modelSpec, model, optimizer, planner, totalSteps, job, store, metrics, evalTasks };
  }

  /** Restores the latest good checkpoint into the model and optimizer, or starts from step 0. */
  private async restore(s: Setup): Promise<Progress> {
    const fresh: Progress = { done: 0, evals: [], elapsedBefore: 0, published: -1, checkpointStep: -1 };
    const ckpt = this.options.resume === false ? undefined : await s.store.loadLatest();
    if (!ckpt) {
      await s.metrics.truncateAfter(0);
      return fresh;
    }
    const { meta } = ckpt;
    const where = (await s.store.list()).find((e) => e.step === meta.step)?.file;
    if (meta.jobId !== this.jobId) throw new CheckpointError(`belongs to job ${meta.jobId}, not ${this.jobId}`, where);
    if (canonicalJson(meta.spec) !== canonicalJson(s.spec)) throw new CheckpointError(`was written for another job spec`, where);
    if (meta.step > s.totalSteps) throw new CheckpointError(`is at step ${meta.step}, beyond the job's ${s.totalSteps} steps`, where);
    try {
      loadNamedArrays(s.model.params, ckpt.params);
      loadNamedArrays(s.model.buffers, ckpt.buffers);
      s.optimizer.loadStateArrays(ckpt.optimizerState, meta.optimizerStepCount);
    } catch (err) {
      throw new CheckpointError(`does not fit the job's model or optimizer: ${(err as Error).message}`, where);
    }
    const sha = sha256Hex(paramsToBytes(s.model.params));
    if (sha !== meta.paramsSha256) throw new CheckpointError(`parameters hash to ${sha}, the checkpoint recorded ${meta.paramsSha256}`, where);
    await s.metrics.truncateAfter(meta.step);
    this.log('info', `resuming job ${this.jobId} from step ${meta.step} of ${s.totalSteps} (${where})`);
    return {
      done: meta.step,
      evals: [...meta.evals],
      best: meta.best ? { ...meta.best } : undefined,
      lastStep: meta.lastStep,
      elapsedBefore: meta.elapsedMs,
      published: -1,
      checkpointStep: meta.step,
      checkpointFile: where,
    };
  }

  private evalDue(s: Setup, done: number): boolean {
    if (done === 0) return false;
    if (done === s.totalSteps) return true;
    return s.spec.evalEvery === 'epoch' ? done % s.planner.stepsPerEpoch === 0 : done % s.spec.evalEvery === 0;
  }

  private async loop(s: Setup, p: Progress, t0: number): Promise<TrainResult> {
    const { signal } = this.options;
    const elapsed = (): number => p.elapsedBefore + (performance.now() - t0);
    const resumedFrom = p.done;
    try {
      // An evaluation that was due at the resume point but interrupted.
      if (this.evalDue(s, p.done) && !p.evals.some((e) => e.step === p.done)) {
        await this.evaluate(s, p);
        await this.checkpoint(s, p, elapsed());
      }
      while (p.done < s.totalSteps) {
        signal?.throwIfAborted();
        await this.trainStep(s, p);
        const evaluate = this.evalDue(s, p.done);
        if (evaluate) await this.evaluate(s, p);
        if (evaluate || p.done % s.spec.checkpointEvery === 0 || p.done === s.totalSteps) await this.checkpoint(s, p, elapsed());
      }
    } catch (err) {
      if (!signal?.aborted) throw err;
      if (p.checkpointStep !== p.done) await this.checkpoint(s, p, elapsed());
      this.log('info', `job ${this.jobId} ${stopReason(signal)} at step ${p.done} of ${s.totalSteps}`);
      return this.result(s, p, stopReason(signal), performance.now() - t0, elapsed(), resumedFrom);
    }
    return this.result(s, p, 'succeeded', performance.now() - t0, elapsed(), resumedFrom);
  }

  private result(s: Setup, p: Progress, status: TrainResult['status'], wallMs: number, elapsedMs: number, resumedFrom: number): TrainResult {
    const last = p.evals[p.evals.length - 1];
    return {
      jobId: this.jobId,
      status,
      paramsSha256: sha256Hex(paramsToBytes(s.model.params)),
      testAccuracy: last?.testAccuracy,
      testLoss: last?.testLoss,
      best: p.best,
      steps: p.done,
      totalSteps: s.totalSteps,
      epochs: p.done / s.planner.stepsPerEpoch,
      wallMs,
      elapsedMs,
      resumedFrom,
      checkpoint: p.checkpointFile,
    };
  }

  /** Makes the current parameters available as version `p.done`, once. Returns the time taken. */
  private async publish(s: Setup, p: Progress): Promise<number> {
    if (p.published === p.done) return 0;
    const t = performance.now();
    await this.options.executor.publishParams(s.job, p.done, stateToBytes(packState(s.model)));
    p.published = p.done;
    return performance.now() - t;
  }

  /**
   * Runs `tasks` and returns validated results in task order. Invalid results are reported and
   * their shards run again (up to `maxStepAttempts` rounds); they never reach the reduction.
   */
  private async runValidated(s: Setup, tasks: ShardTask[]): Promise<ShardResult[]> {
    const attempts = this.options.maxStepAttempts ?? 3;
    const results: (ShardResult | undefined)[] = new Array(tasks.length);
    let pending = tasks.map((_, i) => i);
    for (let attempt = 1; pending.length > 0; attempt++) {
      const batch = await this.options.executor.runShards(s.job, pending.map((i) => tasks[i]), this.options.signal);
      const retry: number[] = [];
      pending.forEach((i, k) => {
        const problem = checkShardResult(s.job, tasks[i], batch[k]);
        if (problem) {
          this.log('warn', `rejected result of step ${tasks[i].step} shard ${tasks[i].shard} (${tasks[i].kind}): ${problem}`);
          retry.push(i);
        } else {
          results[i] = batch[k];
        }
      });
      if (retry.length > 0 && attempt >= attempts) {
        throw new ShardResultError(`job ${this.jobId} step ${tasks[retry[0]].step}: shards ${retry.map((i) => tasks[i].shard).join(', ')} gave invalid results ${attempts} times`);
      }
      pending = retry;
    }
    return results as ShardResult[];
  }

  private async trainStep(s: Setup, p: Progress): Promise<void> {
    const t0 = performance.now();
    const step = p.done;
    const plan = s.planner.plan(step);
    const tasks: ShardTask[] = plan.shards.map((sh) => {
      const { images, labels } = shardSamples(s.train, plan, sh);
      return { kind: 'train', jobId: this.jobId, step, shard: sh.shard, paramsVersion: step, count: sh.end - sh.start, images, labels };
    });
    const publishMs = await this.publish(s, p);
    const results = await this.runValidated(s, tasks);

    const t1 = performance.now();
    const reduced: ReducedBatch = reduceShards(s.job, tasks, results);
    let offset = 0;
    for (const param of s.model.params) {
      param.grad.set(reduced.gradient!.subarray(offset, offset + param.grad.length));
      offset += param.grad.length;
    }
    if (reduced.buffers) {
      offset = 0;
      for (const b of s.model.buffers) {
        b.data.set(reduced.buffers.subarray(offset, offset + b.data.length));
        offset += b.data.length;
      }
    }
    const t2 = performance.now();
    const lr = learningRateAt(s.spec.schedule, s.spec.optimizer.lr, step, s.totalSteps);
    s.optimizer.step(lr);
    p.done = step + 1;
    const t3 = performance.now();

    let queueMs = 0;
    let computeMs = 0;
    let computeMsTotal = 0;
    for (const r of results) {
      queueMs = Math.max(queueMs, r.queueMs ?? 0);
      computeMs = Math.max(computeMs, r.computeMs);
      computeMsTotal += r.computeMs;
    }
    const stepMs = t3 - t0;
    const metrics: StepMetrics = {
      type: 'step',
      step,
      epoch: plan.epoch,
      epochProgress: p.done / s.planner.stepsPerEpoch,
      loss: reduced.lossSum / reduced.count,
      accuracy: reduced.correct / reduced.count,
      count: reduced.count,
      lr,
      imagesPerSec: (reduced.count * 1000) / stepMs,
      stepMs,
      queueMs,
      computeMs,
      computeMsTotal,
      publishMs,
      reduceMs: t2 - t1,
      optimizerMs: t3 - t2,
      time: new Date().toISOString(),
    };
    p.lastStep = metrics;
    await s.metrics.append(metrics);
    this.emit('shards', shardsUsed(this.jobId, 'train', step, results));
    this.emit('step', { ...metrics, jobId: this.jobId, totalSteps: s.totalSteps });
    this.setState({ status: 'running', step: p.done, totalSteps: s.totalSteps });
  }

  private async evaluate(s: Setup, p: Progress): Promise<EvalMetrics> {
    const t0 = performance.now();
    await this.publish(s, p);
    const tasks = s.evalTasks(p.done);
    const results = await this.runValidated(s, tasks);
    const reduced = reduceShards(s.job, tasks, results);
    const metrics: EvalMetrics = {
      type: 'eval',
      step: p.done,
      epochProgress: p.done / s.planner.stepsPerEpoch,
      testLoss: reduced.lossSum / reduced.count,
      testAccuracy: reduced.correct / reduced.count,
      count: reduced.count,
      evalMs: performance.now() - t0,
      time: new Date().toISOString(),
    };
    p.evals.push(metrics);
    if (!p.best || metrics.testAccuracy > p.best.testAccuracy) p.best = { step: p.done, testAccuracy: metrics.testAccuracy };
    await s.metrics.append(metrics);
    this.emit('shards', shardsUsed(this.jobId, 'eval', p.done, results));
    this.emit('eval', { ...metrics, jobId: this.jobId });
    return metrics;
  }

  private async checkpoint(s: Setup, p: Progress, elapsedMs: number): Promise<void> {
    const plan = p.done < s.totalSteps ? s.planner.plan(p.done) : undefined;
    const meta: CheckpointMeta = {
      kind: 'stride-checkpoint',
      jobId: this.jobId,
      spec: s.spec,
      modelSpec: s.modelSpec,
      normalization: s.job.normalization,
      classNames: s.train.classNames,
      step: p.done,
      epoch: plan?.epoch ?? Math.floor(p.done / s.planner.stepsPerEpoch),
      batchIndex: plan?.batchIndex ?? p.done % s.planner.stepsPerEpoch,
      totalSteps: s.totalSteps,
      stepsPerEpoch: s.planner.stepsPerEpoch,
      optimizerStepCount: s.optimizer.stepCount,
      evals: p.evals,
      lastStep: p.lastStep,
      best: p.best,
      elapsedMs,
      paramsSha256: sha256Hex(paramsToBytes(s.model.params)),
      createdAt: new Date().toISOString(),
    };
    const ckpt: Checkpoint = { meta, params: named(s.model.params), buffers: named(s.model.buffers), optimizerState: s.optimizer.stateArrays() };
    const { file } = await s.store.write(ckpt);
    p.checkpointStep = p.done;
    p.checkpointFile = file;
    this.emit('checkpoint', { jobId: this.jobId, step: p.done, file });
  }
}

/** Runs or resumes a job: `new Trainer(spec, options)`, the listeners in `on` attached, `run()`. */
export async function train(spec: JobSpecInput | JobSpec, options: TrainerOptions & { on?: Partial<TrainerListener> }): Promise<TrainResult> {
  const trainer = new Trainer(spec, options);
  for (const [event, handler] of Object.entries(options.on ?? {}) as [keyof TrainerListener, TrainerListener[keyof TrainerListener]][]) {
    trainer.on(event, handler);
  }
  return trainer.run();
}
