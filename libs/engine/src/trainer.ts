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
  planModel,
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
import type { LabeledBox } from '@stride/cnn';
import type { SampleBatch } from '@stride/data';
import type { BestEval, JobState, PrimaryMetricName, TrainResult } from '@stride/protocol';
import { groundTruthObjects, rangeIndices, shardTargets, type JobDataset } from './data.ts';
import { datasetLabel, datasetsDirOf, loadJobSplits, type LoadedSource } from './sources.ts';
import { hasTrainAccuracy, primaryMetricOf, taskEvalMetrics } from './tasks.ts';
import { sha256Hex, type Checkpoint, type CheckpointMeta } from './checkpoint-format.ts';
import { CheckpointStore, writeFileAtomic } from './checkpoint-store.ts';
import { CheckpointError, DivergenceError, isNamedError, JobSpecError, ShardResultError } from './errors.ts';
import { TypedEmitter } from './events.ts';
import type { Executor, JobContext, ShardResult, ShardTask } from './executor.ts';
import { MetricsLog, type EvalMetrics, type SkippedStep, type StepMetrics } from './metrics.ts';
import { evalShardRanges, shardSamples, StepPlanner, type PlannedStep } from './plan.ts';
import { checkShardResult, gradientOutliers, reduceShards, type ReducedBatch } from './reduce.ts';
import { crashPoint } from './test-hooks.ts';
import { packState, stateLayout, stateToBytes } from './shard.ts';
import { asJobSpecError, canonicalJson, normalizeJobSpec, resolveDataset, totalStepsOf, type JobSpec, type JobSpecInput } from './spec.ts';

export type { BestEval, JobState, JobStatus, TrainResult } from '@stride/protocol';

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

/** A best-evaluation record as stored, old (`{ step, testAccuracy }`) or new, in the new form. */
export function normalizeBest(best: unknown): BestEval | undefined {
  if (typeof best !== 'object' || best === null) return undefined;
  const b = best as { step?: unknown; metric?: unknown; value?: unknown; testAccuracy?: unknown };
  if (typeof b.step !== 'number') return undefined;
  if (typeof b.metric === 'string' && typeof b.value === 'number') {
    return { step: b.step, metric: b.metric as PrimaryMetricName, value: b.value, ...(typeof b.testAccuracy === 'number' ? { testAccuracy: b.testAccuracy } : {}) };
  }
  if (typeof b.testAccuracy === 'number') return { step: b.step, metric: 'testAccuracy', value: b.testAccuracy, testAccuracy: b.testAccuracy };
  return undefined;
}

/** Options of a Trainer. */
export interface TrainerOptions {
  /** Computes the shards. The trainer does not close it. */
  executor: Executor;
  /** Root of Stride's data; the job lives in `<dataDir>/jobs/<jobId>/`. */
  dataDir: string;
  /** Where `dataset.path` of image-folder and cifar10 jobs is resolved. Default `STRIDE_DATASETS_DIR`, else `<dataDir>/datasets`. */
  datasetsDir?: string;
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
  /**
   * Steps skipped in a row (shards that keep giving non-finite or outlier gradients) after which
   * the run stops with a `DivergenceError`. Default 3.
   */
  maxSkippedInARow?: number;
  /**
   * Called before every write that matters — each parameter publication, checkpoint and the
   * result file — and throws (a `LeaseLostError`) when this runner may no longer write for the job.
   * The coordinator checks its lease's fencing token here. Default: none.
   */
  guard?: () => Promise<void>;
}

/**
 * Divergence: a step's mean training loss above LOSS_BLOWUP_FACTOR × ln(classes) — ten times the
 * loss of a uniform guess, i.e. confidently wrong on most of the batch — for LOSS_BLOWUP_STEPS
 * steps in a row stops the run with a `DivergenceError` (the step is not applied).
 */
export const LOSS_BLOWUP_FACTOR = 10;
export const LOSS_BLOWUP_STEPS = 3;

/** Shard failures after which the step is skipped rather than the run stopped. */
const SKIPPABLE = new Set(['non-finite', 'outlier']);

/** Where a job's files live. */
export function jobPaths(dataDir: string, jobId: string): { dir: string; spec: string; metrics: string; checkpoints: string; result: string } {
  const dir = join(dataDir, 'jobs', jobId);
  return { dir, spec: join(dir, 'spec.json'), metrics: join(dir, 'metrics.jsonl'), checkpoints: join(dir, 'checkpoints'), result: join(dir, 'result.json') };
}

const JOB_ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

/** The model spec of a job: a zoo name resolved for the dataset's shape and classes. */
export function resolveModelSpec(spec: JobSpec, loadedClasses?: number): ModelSpec {
  if (typeof spec.model !== 'string') return spec.model;
  const { input, numClasses: known, classesFromData } = resolveDataset(spec);
  // An image folder's classes are known once it is loaded: the caller passes them.
  const numClasses = classesFromData ? loadedClasses : known;
  if (numClasses === undefined) throw new Error(`resolveModelSpec: ${datasetLabel(spec.dataset)} counts its classes when loaded; pass the loaded class count`);
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
  readonly train: JobDataset;
  readonly test: JobDataset;
  /** detection: the objects of the evaluated test images (mAP's ground truth). */
  readonly evalObjects?: LabeledBox[][];
  readonly modelSpec: ModelSpec;
  readonly model: Model;
  readonly optimizer: Optimizer;
  readonly planner: StepPlanner;
  readonly totalSteps: number;
  readonly job: JobContext;
  readonly store: CheckpointStore;
  readonly metrics: MetricsLog;
  readonly evalTasks: (step: number) => ShardTask[];
  /** Image folders with `skipBadFiles`: the files left out. */
  readonly skipped?: LoadedSource['skipped'];
  /** The packed state of the version published last, its buffer reused for the next (see `publish`). */
  packed?: Float32Array;
  /** The buffer every train step's gradient is reduced into (see `trainStep`). */
  reduced?: Float32Array;
  /** The samples of even and odd train steps, each reused two steps later (see `trainTasks`). */
  samples?: [SampleBatch | undefined, SampleBatch | undefined];
}

/** Progress of a run, restored from a checkpoint on resume. */
interface Progress {
  /** Optimizer steps applied = the current parameter version. */
  done: number;
  evals: EvalMetrics[];
  best?: BestEval;
  lastStep?: StepMetrics;
  elapsedBefore: number;
  /** Version last handed to `publishParams` (-1: none yet in this run). */
  published: number;
  /** The next step's tasks, built early and handed to `Executor.prepareShards`. */
  next?: { step: number; tasks: ShardTask[] };
  checkpointStep: number;
  checkpointFile?: string;
  /** Steps skipped in a row, and steps in a row whose loss was above the blow-up limit (this run). */
  skippedInARow: number;
  blowupsInARow: number;
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
      if (result.status === 'succeeded') await this.options.guard?.();
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

  /** Lines of metrics.jsonl that are not records are dropped on resume: say which. */
  private metricsReadOptions(): { onInvalidLine: (e: { line: number; reason: string }) => void } {
    return { onInvalidLine: (e) => this.log('warn', `metrics.jsonl line ${e.line} dropped: ${e.reason}`) };
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

    const { train, test, skipped } = await loadJobSplits(spec, this.options.datasetsDir ?? datasetsDirOf(this.options.dataDir));
    const expected = resolveDataset(spec);
    if (train.channels !== expected.input[0] || train.height !== expected.input[1] || train.width !== expected.input[2] || (!expected.classesFromData && train.numClasses !== expected.numClasses)) {
      throw new Error(`dataset ${datasetLabel(spec.dataset)}: loaded ${train.channels}×${train.height}×${train.width} with ${train.numClasses} classes, expected ${expected.input.join('×')} with ${expected.numClasses}`);
    }
    if (skipped && skipped.count > 0) {
      const listed = skipped.files.map((f) => `${f.path} (${f.reason})`).join('; ');
      this.log('warn', `dataset ${datasetLabel(spec.dataset)}: skipped ${skipped.count} unreadable file${skipped.count === 1 ? '' : 's'} (skipBadFiles): ${listed}${skipped.count > skipped.files.length ? '; ...' : ''}`);
    }
    const modelSpec = resolveModelSpec(spec, train.numClasses);
    if (expected.classesFromData && typeof spec.model !== 'string') {
      const out = planModel(modelSpec).outputShape;
      if (out.length !== 1 || out[0] !== train.numClasses) {
        throw new JobSpecError('model', `must output ${train.numClasses} class scores per sample for ${datasetLabel(spec.dataset)} (classes ${train.classNames.join(', ')}), its output shape is [${out.join(', ')}]`);
      }
    }
    const model = buildJobModel(modelSpec, spec.seed);
    const optimizer = createOptimizer(spec.optimizer, model.params);
    const planner = new StepPlanner(train.count, spec.batchSize, spec.shards, spec.seed);
    const totalSteps = totalStepsOf(spec, train.count);
    const job: JobContext = {
      jobId,
      modelSpec,
      task: expected.task,
      ...(expected.task === 'classification' ? {} : { numClasses: expected.numClasses }),
      normalization: { mean: [...train.mean], std: [...train.std] },
      seed: spec.seed,
      ...(spec.numerics ? { numerics: spec.numerics } : {}),
      ...stateLayout(model),
    };
    const store = new CheckpointStore(paths.checkpoints, { keep: spec.keepCheckpoints, onWarning: (m) => this.log('warn', m) });
    const metrics = new MetricsLog(paths.metrics);

    // The test split, cut once into fixed, in-order shards; each task owns a copy of its pixels.
    const sampleSize = test.channels * test.height * test.width;
    const evalCount = spec.evalSamples > 0 ? Math.min(spec.evalSamples, test.count) : test.count;
    const evalShards = evalShardRanges(evalCount, spec.evalShards).map((r) => {
      const targets = shardTargets(job.task, test, rangeIndices(r.start, r.end));
      return {
        shard: r.shard,
        count: r.end - r.start,
        images: test.images.slice(r.start * sampleSize, r.end * sampleSize),
        labels: test.labels.slice(r.start, r.end),
        ...(targets ? { targets } : {}),
      };
    });
    const evalTasks = (step: number): ShardTask[] => evalShards.map((s) => ({ kind: 'eval', jobId, step, paramsVersion: step, ...s }));
    const evalObjects = job.task === 'detection' ? groundTruthObjects(test, evalCount) : undefined;
    return { spec, paths, train, test, evalObjects, modelSpec, model, optimizer, planner, totalSteps, job, store, metrics, evalTasks, skipped };
  }

  /** Restores the latest good checkpoint into the model and optimizer, or starts from step 0. */
  private async restore(s: Setup): Promise<Progress> {
    const fresh: Progress = { done: 0, evals: [], elapsedBefore: 0, published: -1, checkpointStep: -1, skippedInARow: 0, blowupsInARow: 0 };
    const ckpt = this.options.resume === false ? undefined : await s.store.loadLatest();
    if (!ckpt) {
      await s.metrics.truncateAfter(0, this.metricsReadOptions());
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
    await s.metrics.truncateAfter(meta.step, this.metricsReadOptions());
    this.log('info', `resuming job ${this.jobId} from step ${meta.step} of ${s.totalSteps} (${where})`);
    return {
      done: meta.step,
      evals: [...meta.evals],
      best: normalizeBest(meta.best),
      lastStep: meta.lastStep,
      elapsedBefore: meta.elapsedMs,
      published: -1,
      checkpointStep: meta.step,
      checkpointFile: where,
      skippedInARow: 0,
      blowupsInARow: 0,
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
      task: s.job.task,
      testLoss: last?.testLoss,
      ...(last ? taskMetricsOf(last) : {}),
      best: p.best,
      steps: p.done,
      totalSteps: s.totalSteps,
      epochs: p.done / s.planner.stepsPerEpoch,
      wallMs,
      elapsedMs,
      resumedFrom,
      checkpoint: p.checkpointFile,
      ...(s.skipped ? { skippedFiles: s.skipped } : {}),
    };
  }

  /** Makes the current parameters available as version `p.done`, once. Returns the time taken. */
  private async publish(s: Setup, p: Progress): Promise<number> {
    if (p.published === p.done) return 0;
    await this.options.guard?.();
    const t = performance.now();
    // One buffer for every version: executors copy what they keep (see `Executor.publishParams`).
    s.packed = packState(s.model, s.packed);
    await this.options.executor.publishParams(s.job, p.done, stateToBytes(s.packed));
    p.published = p.done;
    return performance.now() - t;
  }

  /**
   * Runs `tasks` and returns validated results in task order. Invalid results are reported and
   * their shards run again (up to `maxStepAttempts` rounds); they never reach the reduction. Train
   * results also pass the per-shard norm check (`gradientOutliers`: a shard's gradient norm against
   * the step's median) once all are in; an outlier is re-requested like an invalid result. Throws a
   * `ShardResultError` whose `reason` is `non-finite` or `outlier` when only such results remained.
   */
  private async runValidated(s: Setup, tasks: ShardTask[]): Promise<ShardResult[]> {
    const attempts = this.options.maxStepAttempts ?? 3;
    const results: (ShardResult | undefined)[] = new Array(tasks.length);
    const reasons = new Map<number, string>();
    let pending = tasks.map((_, i) => i);
    for (let attempt = 1; pending.length > 0; attempt++) {
      const batch = await this.options.executor.runShards(s.job, pending.map((i) => tasks[i]), this.options.signal);
      const retry: number[] = [];
      pending.forEach((i, k) => {
        const problem = checkShardResult(s.job, tasks[i], batch[k]);
        if (problem) {
          this.log('warn', `rejected result of step ${tasks[i].step} shard ${tasks[i].shard} (${tasks[i].kind}): ${problem}`);
          reasons.set(i, /non-finite|not a finite/.test(problem) ? 'non-finite' : 'invalid');
          retry.push(i);
        } else {
          results[i] = batch[k];
        }
      });
      if (retry.length === 0 && tasks[0]?.kind === 'train') {
        for (const { index, problem } of gradientOutliers(results as ShardResult[])) {
          this.log('warn', `rejected result of step ${tasks[index].step} shard ${tasks[index].shard} (train): ${problem}`);
          reasons.set(index, 'outlier');
          results[index] = undefined;
          retry.push(index);
        }
      }
      if (retry.length > 0 && attempt >= attempts) {
        const why = [...new Set(retry.map((i) => reasons.get(i)!))];
        throw new ShardResultError(
          `job ${this.jobId} step ${tasks[retry[0]].step}: shards ${retry.map((i) => tasks[i].shard).join(', ')} gave ${why.join(' or ')} results ${attempts} times`,
          why.length === 1 ? why[0] : 'invalid',
        );
      }
      pending = retry;
    }
    return results as ShardResult[];
  }

  /** Records a step that is not applied (parameters and optimizer state unchanged) and moves on to the next. */
  private async skipStep(s: Setup, p: Progress, step: number, reason: string): Promise<void> {
    p.done = step + 1;
    p.skippedInARow++;
    p.blowupsInARow = 0;
    const record: SkippedStep = { type: 'skip', step, reason, time: new Date().toISOString() };
    await s.metrics.append(record);
    this.log('warn', `job ${this.jobId} step ${step} skipped, parameters unchanged: ${reason}`);
    this.setState({ status: 'running', step: p.done, totalSteps: s.totalSteps });
    const limit = this.options.maxSkippedInARow ?? 3;
    if (p.skippedInARow >= limit) {
      throw new DivergenceError(`job ${this.jobId}: ${p.skippedInARow} steps in a row skipped (up to step ${step}) for non-finite or outlier gradients: training diverged or the data is bad; last: ${reason}`);
    }
  }

  /** The shard tasks of a planned train step: its samples (augmented) and targets. */
  private trainTasks(s: Setup, plan: PlannedStep): ShardTask[] {
    const { step } = plan;
    // Into the buffers of the step two before: a step's tasks are built while the step before it
    // runs (`prepareNext`) or when it starts, and an executor is done with a step's tasks once its
    // runShards has returned (see `Executor.runShards`).
    const samples = (s.samples ??= [undefined, undefined]);
    const n = plan.indices.length;
    const sampleSize = s.train.channels * s.train.height * s.train.width;
    let batch = samples[step % 2];
    if (batch === undefined || batch.labels.length !== n) batch = samples[step % 2] = { images: new Uint8Array(n * sampleSize), labels: new Uint8Array(n) };
    return plan.shards.map((sh) => {
      const into = { images: batch.images.subarray(sh.start * sampleSize, sh.end * sampleSize), labels: batch.labels.subarray(sh.start, sh.end) };
      const { images, labels } = shardSamples(s.train, plan, sh, s.spec.augment ? { ...s.spec.augment, seed: s.spec.seed } : undefined, into);
      const targets = shardTargets(s.job.task, s.train, plan.indices.subarray(sh.start, sh.end));
      return { kind: 'train', jobId: this.jobId, step, shard: sh.shard, paramsVersion: step, count: sh.end - sh.start, images, labels, ...(targets ? { targets } : {}) };
    });
  }

  /**
   * When the executor stages inputs ahead (`prepareShards`): builds step `step`'s tasks once this
   * step's are on their way, hands them over, and keeps them for `trainStep`. Failures only mean
   * nothing was prepared (the step builds its tasks itself and reports the error then).
   */
  private prepareNext(s: Setup, p: Progress, step: number): void {
    const executor = this.options.executor;
    if (!executor.prepareShards || step >= s.totalSteps) return;
    // After the current step's enqueue has gone out: its inputs are not delayed by these.
    setImmediate(() => {
      // The step before `step` is still running (not when the executor answered at once).
      if (p.done !== step - 1) return;
      try {
        const tasks = this.trainTasks(s, s.planner.plan(step));
        p.next = { step, tasks };
        executor.prepareShards!(s.job, tasks);
      } catch {
        p.next = undefined;
      }
    });
  }

  private async trainStep(s: Setup, p: Progress): Promise<void> {
    const t0 = performance.now();
    const step = p.done;
    const plan = s.planner.plan(step);
    const tasks = p.next?.step === step ? p.next.tasks : this.trainTasks(s, plan);
    p.next = undefined;
    const publishMs = await this.publish(s, p);
    let results: ShardResult[];
    try {
      const running = this.runValidated(s, tasks);
      this.prepareNext(s, p, step + 1);
      results = await running;
    } catch (err) {
      if (!isNamedError(err, 'ShardResultError') || !SKIPPABLE.has((err as ShardResultError).reason ?? '')) throw err;
      return this.skipStep(s, p, step, (err as Error).message);
    }
    p.skippedInARow = 0;

    const t1 = performance.now();
    // Into one buffer per run: its values are copied into the parameters' gradients below.
    const reduced: ReducedBatch = reduceShards(s.job, tasks, results, (s.reduced ??= new Float32Array(s.job.gradientLength)));
    const batchLoss = reduced.lossSum / reduced.count;
    // Classification only: other tasks' losses have no "uniform guess" scale.
    const classes = s.train.numClasses;
    const lossLimit = s.job.task === 'classification' ? LOSS_BLOWUP_FACTOR * Math.log(classes) : Infinity;
    p.blowupsInARow = !(batchLoss <= lossLimit) ? p.blowupsInARow + 1 : 0;
    if (p.blowupsInARow >= LOSS_BLOWUP_STEPS) {
      throw new DivergenceError(
        `job ${this.jobId}: the training loss blew up: ${batchLoss.toPrecision(4)} at step ${step}, above ${lossLimit.toPrecision(4)} (${LOSS_BLOWUP_FACTOR} × ln ${classes}) for ${LOSS_BLOWUP_STEPS} steps in a row; lower the learning rate (${s.spec.optimizer.lr})`,
      );
    }
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
    // Their gradients are in the parameters now: the executor may reuse the results' arrays.
    this.options.executor.recycle?.(s.job, results);
    const t2 = performance.now();
    const lr = learningRateAt(s.spec.schedule, s.spec.optimizer.lr, step, s.totalSteps);
    s.optimizer.step(lr);
    crashPoint('optimizer-step');
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
      ...(hasTrainAccuracy(s.job.task) ? { accuracy: reduced.correct / reduced.count } : {}),
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
    // Written in the background (flushed before each checkpoint): no disk wait on the step's path.
    s.metrics.appendLater(metrics);
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
    const taskMetrics = taskEvalMetrics(s.job, results, reduced.count, reduced.correct, { objects: s.evalObjects });
    const metrics: EvalMetrics = {
      type: 'eval',
      step: p.done,
      epochProgress: p.done / s.planner.stepsPerEpoch,
      task: s.job.task,
      testLoss: reduced.lossSum / reduced.count,
      ...taskMetrics,
      count: reduced.count,
      evalMs: performance.now() - t0,
      time: new Date().toISOString(),
    };
    p.evals.push(metrics);
    const { metric, value } = primaryMetricOf(s.job.task, taskMetrics);
    if (!p.best || value > p.best.value) {
      p.best = { step: p.done, metric, value, ...(s.job.task === 'classification' ? { testAccuracy: value } : {}) };
    }
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
    await this.options.guard?.();
    // Every step line up to here is on disk before the checkpoint that resumes after it.
    await s.metrics.flush();
    const { file } = await s.store.write(ckpt);
    p.checkpointStep = p.done;
    p.checkpointFile = file;
    this.emit('checkpoint', { jobId: this.jobId, step: p.done, file });
  }
}

/** The task metrics of an evaluation record (only those present). */
function taskMetricsOf(e: EvalMetrics): Partial<Pick<EvalMetrics, 'testAccuracy' | 'meanIoU' | 'locAccuracy' | 'mAP50' | 'mIoU' | 'pixelAccuracy'>> {
  const out: Record<string, number> = {};
  for (const key of ['testAccuracy', 'meanIoU', 'locAccuracy', 'mAP50', 'mIoU', 'pixelAccuracy'] as const) if (typeof e[key] === 'number') out[key] = e[key];
  return out;
}

/** Runs or resumes a job: `new Trainer(spec, options)`, the listeners in `on` attached, `run()`. */
export async function train(spec: JobSpecInput | JobSpec, options: TrainerOptions & { on?: Partial<TrainerListener> }): Promise<TrainResult> {
  const trainer = new Trainer(spec, options);
  for (const [event, handler] of Object.entries(options.on ?? {}) as [keyof TrainerListener, TrainerListener[keyof TrainerListener]][]) {
    trainer.on(event, handler);
  }
  return trainer.run();
}
